//! Splits IoT SQL text into tokens, on demand.
//!
//! For: the parser, which pulls one token at a time and, for an unquoted FROM
//! topic filter, asks for raw text instead (AWS's own examples write
//! `FROM topic/#`). Positions are byte offsets into the whole text so that
//! errors inside a substitution template point into the template.
//! Never: panic on any input, or decide what a word means (keywords are
//! recognised by the parser, case-insensitively, where the grammar has them).

use std::borrow::Cow;

use crate::error::{SqlError, SqlErrorKind};

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok<'s> {
    Ident(&'s str),
    Str(Cow<'s, str>),
    /// Number text as written; the parser decides Int or Decimal.
    Num(&'s str),
    /// `@name`, without the `@`.
    Var(&'s str),
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Comma,
    Dot,
    Colon,
    Star,
    Slash,
    Percent,
    Plus,
    Minus,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Eof,
}

impl Tok<'_> {
    /// How the token reads in an error message.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("'{s}'"),
            Tok::Str(_) => "string literal".into(),
            Tok::Num(s) => format!("number {s}"),
            Tok::Var(s) => format!("@{s}"),
            Tok::Eof => "end of input".into(),
            other => format!("'{}'", other.symbol()),
        }
    }

    fn symbol(&self) -> &'static str {
        match self {
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::LBrace => "{",
            Tok::RBrace => "}",
            Tok::Comma => ",",
            Tok::Dot => ".",
            Tok::Colon => ":",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::Percent => "%",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Eq => "=",
            Tok::Ne => "<>",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            _ => "",
        }
    }

    /// Whether this is the keyword `kw` (case-insensitive).
    pub(crate) fn is_kw(&self, kw: &str) -> bool {
        matches!(self, Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Lexer<'s> {
    src: &'s str,
    pos: usize,
}

impl<'s> Lexer<'s> {
    pub(crate) fn new(src: &'s str, pos: usize) -> Self {
        Lexer { src, pos }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn set_pos(&mut self, pos: usize) {
        self.pos = pos;
    }

    pub(crate) fn error(&self, at: usize, kind: SqlErrorKind) -> SqlError {
        error_at(self.src, at, kind)
    }

    fn skip_whitespace(&mut self) {
        let rest = &self.src[self.pos..];
        let trimmed = rest.trim_start();
        self.pos += rest.len() - trimmed.len();
    }

    /// The text up to the next whitespace, for an unquoted topic filter.
    pub(crate) fn raw_word(&mut self) -> (&'s str, usize) {
        self.skip_whitespace();
        let start = self.pos;
        let rest = &self.src[start..];
        let len = rest.find(char::is_whitespace).unwrap_or(rest.len());
        self.pos += len;
        (&rest[..len], start)
    }

    /// The next token and the byte offset it starts at.
    pub(crate) fn next_token(&mut self) -> Result<(Tok<'s>, usize), SqlError> {
        self.skip_whitespace();
        let start = self.pos;
        let bytes = self.src.as_bytes();
        let Some(&b) = bytes.get(start) else {
            return Ok((Tok::Eof, start));
        };
        let single = |tok| Ok((tok, start));
        self.pos += 1;
        match b {
            b'(' => single(Tok::LParen),
            b')' => single(Tok::RParen),
            b'[' => single(Tok::LBracket),
            b']' => single(Tok::RBracket),
            b'{' => single(Tok::LBrace),
            b'}' => single(Tok::RBrace),
            b',' => single(Tok::Comma),
            b'.' => single(Tok::Dot),
            b':' => single(Tok::Colon),
            b'*' => single(Tok::Star),
            b'/' => single(Tok::Slash),
            b'%' => single(Tok::Percent),
            b'+' => single(Tok::Plus),
            b'-' => single(Tok::Minus),
            b'=' => single(Tok::Eq),
            b'<' => match bytes.get(self.pos) {
                Some(b'>') => {
                    self.pos += 1;
                    single(Tok::Ne)
                }
                Some(b'=') => {
                    self.pos += 1;
                    single(Tok::Le)
                }
                _ => single(Tok::Lt),
            },
            b'>' => {
                if bytes.get(self.pos) == Some(&b'=') {
                    self.pos += 1;
                    single(Tok::Ge)
                } else {
                    single(Tok::Gt)
                }
            }
            b'!' if bytes.get(self.pos) == Some(&b'=') => {
                self.pos += 1;
                single(Tok::Ne)
            }
            b'\'' | b'"' => self.string(b, start),
            b'@' => {
                let end = self.ident_end(self.pos);
                if end == self.pos {
                    return Err(self.error(start, SqlErrorKind::InvalidCharacter('@')));
                }
                let name = &self.src[self.pos..end];
                self.pos = end;
                Ok((Tok::Var(name), start))
            }
            b if b.is_ascii_digit() => self.number(start),
            b if b.is_ascii_alphabetic() || b == b'_' => {
                let end = self.ident_end(start);
                self.pos = end;
                Ok((Tok::Ident(&self.src[start..end]), start))
            }
            _ => {
                let c = self.src[start..].chars().next().unwrap_or('\u{fffd}');
                Err(self.error(
                    start,
                    match c {
                        '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' | '\u{201C}'
                        | '\u{201D}' | '\u{201E}' | '\u{201F}' | '\u{2032}' | '\u{2033}'
                        | '\u{00B4}' | '\u{00AB}' | '\u{00BB}' => SqlErrorKind::CurlyQuote(c),
                        c => SqlErrorKind::InvalidCharacter(c),
                    },
                ))
            }
        }
    }

    fn ident_end(&self, from: usize) -> usize {
        let bytes = self.src.as_bytes();
        let mut end = from;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        end
    }

    fn number(&mut self, start: usize) -> Result<(Tok<'s>, usize), SqlError> {
        let bytes = self.src.as_bytes();
        let digits = |mut i: usize| {
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            i
        };
        let mut end = digits(start);
        if bytes.get(end) == Some(&b'.') && bytes.get(end + 1).is_some_and(u8::is_ascii_digit) {
            end = digits(end + 1);
        }
        if matches!(bytes.get(end), Some(b'e' | b'E')) {
            let mut e = end + 1;
            if matches!(bytes.get(e), Some(b'+' | b'-')) {
                e += 1;
            }
            if bytes.get(e).is_some_and(u8::is_ascii_digit) {
                end = digits(e);
            }
        }
        // `12abc` is neither a number nor a name.
        if bytes
            .get(end)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
        {
            let bad_end = self.ident_end(end);
            return Err(self.error(
                start,
                SqlErrorKind::InvalidNumber(self.src[start..bad_end].to_string()),
            ));
        }
        self.pos = end;
        Ok((Tok::Num(&self.src[start..end]), start))
    }

    /// A string literal in single or double quotes. A doubled quote stands for
    /// itself (SQL's `''`); backslash escapes follow JSON (`\n`, `\t`, `\uXXXX`,
    /// `\\`, `\'`, `\"`, `\/`). Any other backslash is kept as written, so
    /// regular expressions such as `'\d+'` need no doubling — `\b` and `\f`
    /// included, which in a pattern mean a word boundary and a form feed.
    fn string(&mut self, quote: u8, start: usize) -> Result<(Tok<'s>, usize), SqlError> {
        let src = self.src;
        let body_start = self.pos;
        let mut owned: Option<String> = None;
        let mut i = body_start;
        let mut chunk_start = body_start;
        let bytes = src.as_bytes();
        loop {
            let Some(&b) = bytes.get(i) else {
                return Err(self.error(start, SqlErrorKind::UnterminatedString));
            };
            if b == quote {
                if bytes.get(i + 1) == Some(&quote) {
                    let s = owned.get_or_insert_with(String::new);
                    s.push_str(&src[chunk_start..i]);
                    s.push(quote as char);
                    i += 2;
                    chunk_start = i;
                    continue;
                }
                let tok = match owned {
                    Some(mut s) => {
                        s.push_str(&src[chunk_start..i]);
                        Cow::Owned(s)
                    }
                    None => Cow::Borrowed(&src[body_start..i]),
                };
                self.pos = i + 1;
                return Ok((Tok::Str(tok), start));
            }
            if b == b'\\' {
                let Some(&next) = bytes.get(i + 1) else {
                    return Err(self.error(start, SqlErrorKind::UnterminatedString));
                };
                let (replacement, consumed): (Option<char>, usize) = match next {
                    b'n' => (Some('\n'), 2),
                    b't' => (Some('\t'), 2),
                    b'r' => (Some('\r'), 2),
                    b'\\' => (Some('\\'), 2),
                    b'\'' => (Some('\''), 2),
                    b'"' => (Some('"'), 2),
                    b'/' => (Some('/'), 2),
                    b'u' => match src
                        .get(i + 2..i + 6)
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                        .and_then(char::from_u32)
                    {
                        Some(c) => (Some(c), 6),
                        None => (None, 0),
                    },
                    _ => (None, 0),
                };
                if let Some(c) = replacement {
                    let s = owned.get_or_insert_with(String::new);
                    s.push_str(&src[chunk_start..i]);
                    s.push(c);
                    i += consumed;
                    chunk_start = i;
                    continue;
                }
                // Kept verbatim; step over the escaped character so that `\'`
                // style sequences we do not translate cannot end the string.
                i += 1;
                if bytes.get(i) == Some(&quote) {
                    continue;
                }
            }
            i += src[i..].chars().next().map_or(1, char::len_utf8);
        }
    }
}

/// An error at byte offset `at` of `src`, with its line and column.
pub(crate) fn error_at(src: &str, at: usize, kind: SqlErrorKind) -> SqlError {
    let at = at.min(src.len());
    let mut before = &src[..0];
    // Find a char boundary at or before `at`.
    for i in (0..=at).rev() {
        if src.is_char_boundary(i) {
            before = &src[..i];
            break;
        }
    }
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    SqlError {
        line: u32::try_from(line).unwrap_or(u32::MAX),
        column: u32::try_from(column).unwrap_or(u32::MAX),
        kind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(src: &str) -> Vec<Tok<'_>> {
        let mut lexer = Lexer::new(src, 0);
        let mut out = Vec::new();
        loop {
            let (tok, _) = lexer.next_token().unwrap();
            if tok == Tok::Eof {
                return out;
            }
            out.push(tok);
        }
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(tokens(r"'it''s'"), [Tok::Str("it's".into())]);
        assert_eq!(tokens(r#""a\"b""#), [Tok::Str("a\"b".into())]);
        assert_eq!(tokens(r"'\d+\n'"), [Tok::Str("\\d+\n".into())]);
        assert_eq!(tokens(r"'\u00e9'"), [Tok::Str("é".into())]);
        assert_eq!(tokens(r"'a\\b'"), [Tok::Str("a\\b".into())]);
    }

    #[test]
    fn operators_and_numbers() {
        assert_eq!(
            tokens("a<>1.5e3 != <= >= 2"),
            [
                Tok::Ident("a"),
                Tok::Ne,
                Tok::Num("1.5e3"),
                Tok::Ne,
                Tok::Le,
                Tok::Ge,
                Tok::Num("2")
            ]
        );
        assert!(Lexer::new("12abc", 0).next_token().is_err());
    }

    #[test]
    fn errors_have_line_and_column() {
        let err = error_at("SELECT\n  a ~", 11, SqlErrorKind::InvalidCharacter('~'));
        // The scenario's text, pasted with typographic quotes.
        let curly = crate::parse(
            "SELECT * FROM \u{2018}abcde-12345/+/audit\u{2019}",
            crate::SqlVersion::default(),
        )
        .unwrap_err();
        assert_eq!(curly.kind, SqlErrorKind::CurlyQuote('\u{2018}'));
        assert!(
            curly.to_string().contains("straight single quote '"),
            "{curly}"
        );
        assert_eq!((err.line, err.column), (2, 5));
    }
}
