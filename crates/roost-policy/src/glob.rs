//! IAM-style glob patterns, as used by `Resource`, `Action`, `StringLike` and `ArnLike`.
//!
//! `*` matches any run of characters (including none, `/` and `:`), `?` matches exactly
//! one character, everything else is literal and case-sensitive. MQTT's `+` and `#`
//! mean nothing here: AWS matches them literally, so a policy on `topicfilter/a/+`
//! covers only the filter that is literally `a/+`.
//!
//! A pattern is compiled once (when a connection's policies are prepared) so that
//! matching on the broker's hot path never allocates and never backtracks more than
//! linearly per `*`. This module must never interpret policy variables: by the time a
//! pattern is compiled they are resolved, and substituted values arrive as
//! [`Segment::Literal`] so that a client id such as `*` cannot widen a grant.

/// A piece of a pattern's source text.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Segment<'a> {
    /// Policy text: `*` and `?` are wildcards.
    Glob(&'a str),
    /// Text that matches only itself: escapes and substituted variable values.
    Literal(&'a str),
}

/// A compiled glob. The common shapes get their own variant because they are the
/// ones real policies use (`*`, an exact ARN, `.../jobs/*`) and they match with a
/// single comparison.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Pattern {
    Any,
    Exact(Box<str>),
    Prefix(Box<str>),
    General(Box<[Token]>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Token {
    Lit(Box<str>),
    Star,
    One,
}

impl Pattern {
    /// A pattern where the whole text is policy text.
    pub(crate) fn glob(text: &str) -> Pattern {
        Pattern::compile([Segment::Glob(text)])
    }

    pub(crate) fn compile<'a>(segments: impl IntoIterator<Item = Segment<'a>>) -> Pattern {
        let mut tokens: Vec<Token> = Vec::new();
        let mut literal = String::new();
        let flush = |literal: &mut String, tokens: &mut Vec<Token>| {
            if !literal.is_empty() {
                tokens.push(Token::Lit(std::mem::take(literal).into_boxed_str()));
            }
        };
        for segment in segments {
            match segment {
                Segment::Literal(text) => literal.push_str(text),
                Segment::Glob(text) => {
                    for c in text.chars() {
                        match c {
                            '*' => {
                                flush(&mut literal, &mut tokens);
                                // `**` means the same as `*`; one star keeps matching linear.
                                if tokens.last() != Some(&Token::Star) {
                                    tokens.push(Token::Star);
                                }
                            }
                            '?' => {
                                flush(&mut literal, &mut tokens);
                                tokens.push(Token::One);
                            }
                            c => literal.push(c),
                        }
                    }
                }
            }
        }
        flush(&mut literal, &mut tokens);
        match tokens.as_slice() {
            [] => Pattern::Exact("".into()),
            [Token::Star] => Pattern::Any,
            [Token::Lit(s)] => Pattern::Exact(s.clone()),
            [Token::Lit(s), Token::Star] => Pattern::Prefix(s.clone()),
            _ => Pattern::General(tokens.into_boxed_slice()),
        }
    }

    pub(crate) fn matches(&self, text: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Exact(s) => **s == *text,
            Pattern::Prefix(s) => text.starts_with(&**s),
            Pattern::General(tokens) => matches_tokens(tokens, text),
        }
    }
}

/// Length in bytes of the UTF-8 character starting at `text[at]`.
fn char_len(text: &str, at: usize) -> usize {
    text[at..].chars().next().map_or(1, char::len_utf8)
}

/// Classic wildcard matching that remembers only the last `*`: when a later `*` is
/// reached the earlier one never needs to grow again, because the literal run between
/// them was matched at its leftmost possible place.
fn matches_tokens(tokens: &[Token], text: &str) -> bool {
    let mut t = 0;
    let mut p = 0;
    // (token index after the star, text position the star's match currently ends at)
    let mut star: Option<(usize, usize)> = None;
    loop {
        if let Some(token) = tokens.get(t) {
            match token {
                Token::Star => {
                    star = Some((t + 1, p));
                    t += 1;
                    continue;
                }
                Token::One if p < text.len() => {
                    p += char_len(text, p);
                    t += 1;
                    continue;
                }
                Token::Lit(lit) if text[p..].starts_with(&**lit) => {
                    p += lit.len();
                    t += 1;
                    continue;
                }
                _ => {}
            }
        } else if p == text.len() {
            return true;
        }
        match star {
            Some((after_star, end)) if end < text.len() => {
                let end = end + char_len(text, end);
                star = Some((after_star, end));
                t = after_star;
                p = end;
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The obvious exponential definition, over characters, kept as the oracle.
    fn reference(pattern: &[char], text: &[char]) -> bool {
        match pattern.split_first() {
            None => text.is_empty(),
            Some(('*', rest)) => (0..=text.len()).any(|skip| reference(rest, &text[skip..])),
            Some(('?', rest)) => !text.is_empty() && reference(rest, &text[1..]),
            Some((c, rest)) => text.first() == Some(c) && reference(rest, &text[1..]),
        }
    }

    fn glob(pattern: &str, text: &str) -> bool {
        Pattern::glob(pattern).matches(text)
    }

    #[test]
    fn shapes_are_recognised() {
        assert_eq!(Pattern::glob("*"), Pattern::Any);
        assert_eq!(Pattern::glob("**"), Pattern::Any);
        assert_eq!(Pattern::glob("a/b"), Pattern::Exact("a/b".into()));
        assert_eq!(Pattern::glob("a/*"), Pattern::Prefix("a/".into()));
        assert!(matches!(Pattern::glob("a/*/b"), Pattern::General(_)));
        assert_eq!(Pattern::glob(""), Pattern::Exact("".into()));
    }

    #[test]
    fn star_spans_levels_and_colons() {
        assert!(glob("arn:*:topic/a/*", "arn:aws:iot:r:1:topic/a/b/c"));
        assert!(glob("a*", "a"));
        assert!(glob("*b", "ab"));
        assert!(!glob("*b", "ba"));
        assert!(glob("a*b*c", "aXbYbZc"));
        assert!(!glob("a*b*c", "aXbYbZ"));
    }

    #[test]
    fn question_mark_is_one_character_not_one_byte() {
        assert!(glob("a?c", "abc"));
        assert!(glob("a?c", "aéc"));
        assert!(!glob("a?c", "ac"));
        assert!(!glob("a?c", "abbc"));
        assert!(glob("*?", "é"));
    }

    #[test]
    fn mqtt_wildcards_and_case_are_literal() {
        assert!(glob("a/+/b", "a/+/b"));
        assert!(!glob("a/+/b", "a/x/b"));
        assert!(!glob("a/#", "a/b"));
        assert!(!glob("A/*", "a/b"));
    }

    #[test]
    fn literal_segments_do_not_wildcard() {
        let p = Pattern::compile([
            Segment::Glob("t/"),
            Segment::Literal("*"),
            Segment::Glob("/x"),
        ]);
        assert!(p.matches("t/*/x"));
        assert!(!p.matches("t/abc/x"));
        let p = Pattern::compile([
            Segment::Glob("t/"),
            Segment::Literal("a?"),
            Segment::Glob("*"),
        ]);
        assert!(p.matches("t/a?/more"));
        assert!(!p.matches("t/ab/more"));
    }

    proptest! {
        #[test]
        fn agrees_with_the_reference_matcher(
            pattern in "[ab/:*?é]{0,10}",
            text in "[ab/:é]{0,12}",
        ) {
            let p: Vec<char> = pattern.chars().collect();
            let t: Vec<char> = text.chars().collect();
            prop_assert_eq!(glob(&pattern, &text), reference(&p, &t), "{} vs {}", pattern, text);
        }

        #[test]
        fn a_pattern_matches_text_it_was_made_from(
            parts in proptest::collection::vec(("[ab/]{0,3}", "[ab/]{0,3}"), 0..5),
        ) {
            // Build text, and a pattern that stars out every second part of it.
            let mut text = String::new();
            let mut pattern = String::new();
            for (kept, starred) in &parts {
                text.push_str(kept);
                text.push_str(starred);
                pattern.push_str(kept);
                pattern.push('*');
            }
            prop_assert!(glob(&pattern, &text));
        }
    }
}
