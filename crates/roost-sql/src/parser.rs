//! Recursive-descent parser for IoT SQL statements and template expressions.
//!
//! For: turning text into the tree in [`crate::ast`], rejecting at parse time
//! what can never work (syntax errors, unknown functions, functions that need
//! an AWS service, 2016-03-23 features under 2015-10-08, invalid FROM filters,
//! invalid literal regular expressions), and resolving names once.
//! Never: recurse without bound. Nesting (parentheses, unary operators,
//! literals inside literals) and the depth of the resulting tree are capped,
//! because evaluating, printing and dropping a tree all recurse over it.
//!
//! Precedence, loosest first (AWS does not document it; this is SQL's order
//! and fits every AWS example): OR; AND; NOT; comparisons (not chained); `+`
//! `-`; `*` `/` `%`; unary `-`; postfix `.name` and `[index]`.

use std::sync::Arc;

use roost_topic::{validate_topic_filter, TopicLimits};

use crate::ast::{BinOp, Call, Case, CastType, Expr, Item, Select, SetVar};
use crate::decimal::Dec;
use crate::error::{SqlError, SqlErrorKind};
use crate::functions::{self, Func, Lookup};
use crate::lexer::{Lexer, Tok};
use crate::SqlVersion;

/// How deeply parentheses, unary operators and literals may nest.
pub(crate) const MAX_NESTING: usize = 64;
/// How deep the expression tree may grow (a chain `a + b + … ` of N terms is
/// N deep).
pub(crate) const MAX_TREE_DEPTH: usize = 256;
/// Longest statement or template accepted.
pub(crate) const MAX_TEXT_BYTES: usize = 256 * 1024;
/// Longest SET variable name (AWS: 64 characters).
const MAX_VARIABLE_NAME: usize = 64;
/// Words that cannot be field names.
const RESERVED: &[&str] = &[
    "select", "from", "where", "as", "and", "or", "not", "case", "when", "then", "else", "end",
    "true", "false", "null",
];

/// A parsed expression and the depth of its tree.
type Parsed = Result<(Expr, usize), SqlError>;

/// What a statement parses to, before the crate wraps it.
pub(crate) struct ParsedStatement {
    pub sets: Vec<SetVar>,
    pub select: Select,
    pub from: Option<String>,
    pub uses_payload: bool,
}

pub(crate) struct Parser<'s> {
    lex: Lexer<'s>,
    peeked: Option<(Tok<'s>, usize)>,
    version: SqlVersion,
    /// SET variables visible so far, in slot order.
    vars: Vec<Box<str>>,
    nesting: usize,
    /// Whether anything reads the payload (fields or `*`); when nothing does,
    /// evaluation skips parsing it.
    pub uses_payload: bool,
}

impl<'s> Parser<'s> {
    pub(crate) fn new(
        src: &'s str,
        start: usize,
        version: SqlVersion,
        vars: Vec<Box<str>>,
    ) -> Self {
        Parser {
            lex: Lexer::new(src, start),
            peeked: None,
            version,
            vars,
            nesting: 0,
            uses_payload: false,
        }
    }

    fn v2(&self) -> bool {
        self.version == SqlVersion::V2016_03_23
    }

    // ---- token plumbing ---------------------------------------------------------

    fn peek(&mut self) -> Result<&(Tok<'s>, usize), SqlError> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lex.next_token()?);
        }
        Ok(self.peeked.as_ref().expect("just filled"))
    }

    fn next(&mut self) -> Result<(Tok<'s>, usize), SqlError> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lex.next_token(),
        }
    }

    /// The token after the peeked one, without consuming anything.
    fn peek_second(&mut self) -> Result<Tok<'s>, SqlError> {
        self.peek()?;
        let mut ahead = self.lex.clone();
        Ok(ahead.next_token()?.0)
    }

    fn peek_is_kw(&mut self, kw: &str) -> Result<bool, SqlError> {
        Ok(self.peek()?.0.is_kw(kw))
    }

    fn eat(&mut self, tok: &Tok<'_>) -> Result<bool, SqlError> {
        if &self.peek()?.0 == tok {
            self.next()?;
            return Ok(true);
        }
        Ok(false)
    }

    fn eat_kw(&mut self, kw: &str) -> Result<bool, SqlError> {
        if self.peek_is_kw(kw)? {
            self.next()?;
            return Ok(true);
        }
        Ok(false)
    }

    fn expect(&mut self, tok: &Tok<'_>, expected: &'static str) -> Result<usize, SqlError> {
        let (got, at) = self.next()?;
        if &got == tok {
            return Ok(at);
        }
        Err(self.unexpected(&got, at, expected))
    }

    fn expect_kw(&mut self, kw: &str, expected: &'static str) -> Result<usize, SqlError> {
        let (got, at) = self.next()?;
        if got.is_kw(kw) {
            return Ok(at);
        }
        Err(self.unexpected(&got, at, expected))
    }

    fn unexpected(&self, got: &Tok<'_>, at: usize, expected: &'static str) -> SqlError {
        self.lex.error(
            at,
            SqlErrorKind::Unexpected {
                found: got.describe(),
                expected,
            },
        )
    }

    fn error(&self, at: usize, kind: SqlErrorKind) -> SqlError {
        self.lex.error(at, kind)
    }

    fn needs_v2(&self, at: usize, feature: &str) -> Result<(), SqlError> {
        if self.v2() {
            Ok(())
        } else {
            Err(self.error(at, SqlErrorKind::NeedsVersion2016(feature.to_string())))
        }
    }

    fn enter(&mut self, at: usize) -> Result<(), SqlError> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(self.error(at, SqlErrorKind::TooDeep(MAX_NESTING)));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.nesting -= 1;
    }

    fn depth(&self, depth: usize, at: usize) -> Result<usize, SqlError> {
        if depth > MAX_TREE_DEPTH {
            return Err(self.error(at, SqlErrorKind::TooDeep(MAX_TREE_DEPTH)));
        }
        Ok(depth)
    }

    // ---- statements -------------------------------------------------------------

    pub(crate) fn statement(mut self) -> Result<ParsedStatement, SqlError> {
        let mut sets = Vec::new();
        if self.peek_is_kw("set")? {
            let (_, at) = self.next()?;
            self.needs_v2(at, "SET")?;
            loop {
                let (tok, at) = self.next()?;
                let Tok::Var(name) = tok else {
                    return Err(self.unexpected(&tok, at, "a variable (@name)"));
                };
                if name.chars().count() > MAX_VARIABLE_NAME {
                    return Err(self.error(at, SqlErrorKind::VariableNameTooLong(name.into())));
                }
                if self.vars.iter().any(|v| v.as_ref() == name) {
                    return Err(self.error(at, SqlErrorKind::DuplicateVariable(name.into())));
                }
                self.expect(&Tok::Eq, "'='")?;
                let (expr, _) = self.expr()?;
                self.vars.push(name.into());
                sets.push(SetVar {
                    name: name.into(),
                    expr,
                });
                if !self.eat(&Tok::Comma)? {
                    break;
                }
            }
        }
        self.expect_kw("select", "SELECT")?;
        let (value, items, _) = self.select_list()?;
        let mut from = None;
        if self.peek_is_kw("from")? {
            self.next()?;
            from = Some(self.topic_filter()?);
        }
        let filter = if self.eat_kw("where")? {
            Some(self.expr()?.0)
        } else {
            None
        };
        let (tok, at) = self.next()?;
        if tok != Tok::Eof {
            return Err(self.unexpected(&tok, at, "end of statement"));
        }
        Ok(ParsedStatement {
            sets,
            select: Select {
                value,
                items,
                from: None,
                filter,
            },
            from,
            uses_payload: self.uses_payload,
        })
    }

    /// One expression, as inside `${…}`; stops before the closing `}` and
    /// returns the offset just past it.
    pub(crate) fn template_expr(mut self) -> Result<(Expr, usize, bool), SqlError> {
        let (expr, _) = self.expr()?;
        let (tok, at) = self.next()?;
        match tok {
            Tok::RBrace => Ok((expr, self.lex.pos(), self.uses_payload)),
            Tok::Eof => Err(self.error(at, SqlErrorKind::UnterminatedTemplate)),
            other => Err(self.unexpected(&other, at, "'}'")),
        }
    }

    fn topic_filter(&mut self) -> Result<String, SqlError> {
        let (filter, at) = match self.peek()?.clone() {
            (Tok::Str(s), at) => {
                self.next()?;
                (s.into_owned(), at)
            }
            (Tok::Eof, at) => return Err(self.unexpected(&Tok::Eof, at, "a topic filter")),
            (_, at) => {
                // AWS's own examples leave the filter unquoted (`FROM a/#`).
                self.peeked = None;
                self.lex.set_pos(at);
                let (word, at) = self.lex.raw_word();
                (word.to_string(), at)
            }
        };
        let invalid = |reason: String| {
            self.error(
                at,
                SqlErrorKind::InvalidTopicFilter {
                    filter: filter.clone(),
                    reason,
                },
            )
        };
        match validate_topic_filter(&filter, &TopicLimits::aws()) {
            Ok(parsed) if parsed.is_shared() => Err(invalid(
                "a rule cannot use a shared subscription ($share/…)".into(),
            )),
            Ok(_) => Ok(filter),
            Err(e) => Err(invalid(e.to_string())),
        }
    }

    /// `[VALUE] item, item…` — shared by the statement and nested SELECTs.
    fn select_list(&mut self) -> Result<(bool, Vec<Item>, usize), SqlError> {
        let value = self.value_keyword()?;
        if value {
            let (expr, depth) = self.expr()?;
            if self.peek_is_kw("as")? {
                let (tok, at) = self.next()?;
                return Err(self.unexpected(
                    &tok,
                    at,
                    "FROM, WHERE or end of statement after SELECT VALUE",
                ));
            }
            let item = match expr {
                Expr::Star => Item::Star,
                expr => Item::Expr {
                    path: vec!["value".into()],
                    expr,
                    aliased: false,
                },
            };
            return Ok((true, vec![item], depth));
        }
        let mut items = Vec::new();
        let mut depth = 1;
        loop {
            let position = items.len() + 1;
            let (expr, d) = self.expr()?;
            depth = depth.max(d);
            let item = if self.eat_kw("as")? {
                Item::Expr {
                    expr,
                    path: self.alias()?,
                    aliased: true,
                }
            } else if let Expr::Star = expr {
                Item::Star
            } else {
                Item::Expr {
                    path: vec![default_key(&expr, position)],
                    expr,
                    aliased: false,
                }
            };
            items.push(item);
            if !self.eat(&Tok::Comma)? {
                return Ok((false, items, depth));
            }
        }
    }

    /// Whether the next word is the VALUE keyword rather than a field called
    /// `value` (a common payload key): it is the keyword when an expression
    /// follows it, and a field before `FROM`, `WHERE`, `AS`, `,`, `.` or a
    /// binary operator other than `-`.
    fn value_keyword(&mut self) -> Result<bool, SqlError> {
        if !self.peek_is_kw("value")? {
            return Ok(false);
        }
        let second = self.peek_second()?;
        let keyword = match &second {
            Tok::Ident(word) => !["from", "where", "as", "and", "or"]
                .iter()
                .any(|k| word.eq_ignore_ascii_case(k)),
            // AWS reserves VALUE, so `SELECT VALUE [1, 2]` and `SELECT VALUE
            // -x` are what a rule means; a field called `value` is read as one
            // only where no expression could follow.
            Tok::Str(_)
            | Tok::Num(_)
            | Tok::Var(_)
            | Tok::LParen
            | Tok::LBrace
            | Tok::LBracket
            | Tok::Minus => true,
            Tok::Star => {
                // `SELECT VALUE *` versus `SELECT value * 2`.
                let mut ahead = self.lex.clone();
                ahead.next_token()?;
                let (third, _) = ahead.next_token()?;
                matches!(third, Tok::Eof | Tok::RParen)
                    || third.is_kw("from")
                    || third.is_kw("where")
            }
            _ => false,
        };
        if keyword {
            self.next()?;
        }
        Ok(keyword)
    }

    /// `name(.name)*`; parts may be quoted to hold any text.
    fn alias(&mut self) -> Result<Vec<Box<str>>, SqlError> {
        let mut path = Vec::new();
        loop {
            let (tok, at) = self.next()?;
            match tok {
                Tok::Ident(s) => path.push(s.into()),
                Tok::Str(s) => path.push(s.as_ref().into()),
                other => return Err(self.unexpected(&other, at, "an alias")),
            }
            if !self.eat(&Tok::Dot)? {
                return Ok(path);
            }
        }
    }

    // ---- expressions ------------------------------------------------------------

    pub(crate) fn expr(&mut self) -> Parsed {
        let at = self.peek()?.1;
        self.enter(at)?;
        let result = self.or();
        self.leave();
        result
    }

    fn binary_chain(
        &mut self,
        operand: fn(&mut Self) -> Parsed,
        op_of: fn(&Tok<'_>) -> Option<BinOp>,
    ) -> Parsed {
        let (mut left, mut depth) = operand(self)?;
        loop {
            let (tok, at) = self.peek()?;
            let Some(op) = op_of(tok) else {
                return Ok((left, depth));
            };
            let at = *at;
            self.next()?;
            let (right, rdepth) = operand(self)?;
            depth = self.depth(1 + depth.max(rdepth), at)?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn or(&mut self) -> Parsed {
        self.binary_chain(Self::and, |t| t.is_kw("or").then_some(BinOp::Or))
    }

    fn and(&mut self) -> Parsed {
        self.binary_chain(Self::not, |t| t.is_kw("and").then_some(BinOp::And))
    }

    fn not(&mut self) -> Parsed {
        if self.peek_is_kw("not")? {
            let (_, at) = self.next()?;
            self.enter(at)?;
            let inner = self.not();
            self.leave();
            let (e, d) = inner?;
            return Ok((Expr::Not(Box::new(e)), self.depth(d + 1, at)?));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Parsed {
        let (left, ldepth) = self.additive()?;
        let (tok, at) = self.peek()?;
        let at = *at;
        let op = match tok {
            Tok::Eq => BinOp::Eq,
            Tok::Ne => BinOp::Ne,
            Tok::Lt => BinOp::Lt,
            Tok::Le => BinOp::Le,
            Tok::Gt => BinOp::Gt,
            Tok::Ge => BinOp::Ge,
            _ => return Ok((left, ldepth)),
        };
        self.next()?;
        let (right, rdepth) = self.additive()?;
        if let (tok @ (Tok::Eq | Tok::Ne | Tok::Lt | Tok::Le | Tok::Gt | Tok::Ge), at) =
            self.peek()?.clone()
        {
            return Err(self.unexpected(&tok, at, "no second comparison (use AND)"));
        }
        let depth = self.depth(1 + ldepth.max(rdepth), at)?;
        Ok((Expr::Binary(op, Box::new(left), Box::new(right)), depth))
    }

    fn additive(&mut self) -> Parsed {
        self.binary_chain(Self::multiplicative, |t| match t {
            Tok::Plus => Some(BinOp::Add),
            Tok::Minus => Some(BinOp::Sub),
            _ => None,
        })
    }

    fn multiplicative(&mut self) -> Parsed {
        self.binary_chain(Self::unary, |t| match t {
            Tok::Star => Some(BinOp::Mul),
            Tok::Slash => Some(BinOp::Div),
            Tok::Percent => Some(BinOp::Rem),
            _ => None,
        })
    }

    fn unary(&mut self) -> Parsed {
        if let (Tok::Minus, at) = self.peek()?.clone() {
            self.next()?;
            self.enter(at)?;
            let inner = self.unary();
            self.leave();
            let (e, d) = inner?;
            // A negative literal is a literal (so it prints as one).
            let folded = match e {
                Expr::Int(i) if i != 0 => Expr::Int(-i),
                Expr::Dec(d) if !d.is_zero() => Expr::Dec(d.neg()),
                other => return Ok((Expr::Neg(Box::new(other)), self.depth(d + 1, at)?)),
            };
            return Ok((folded, d));
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Parsed {
        let (mut e, mut depth) = self.primary()?;
        loop {
            match self.peek()?.clone() {
                (Tok::Dot, at) => {
                    self.next()?;
                    let (tok, name_at) = self.next()?;
                    let Tok::Ident(name) = tok else {
                        return Err(self.unexpected(&tok, name_at, "a member name"));
                    };
                    depth = self.depth(depth + 1, at)?;
                    e = Expr::Member(Box::new(e), name.into());
                }
                (Tok::LBracket, at) => {
                    self.next()?;
                    let (index, idepth) = self.expr()?;
                    self.expect(&Tok::RBracket, "']'")?;
                    depth = self.depth(1 + depth.max(idepth), at)?;
                    e = Expr::Index(Box::new(e), Box::new(index));
                }
                _ => return Ok((e, depth)),
            }
        }
    }

    fn primary(&mut self) -> Parsed {
        let (tok, at) = self.next()?;
        match tok {
            Tok::Num(text) => Ok((self.number(text, at)?, 1)),
            Tok::Str(s) => Ok((Expr::Str(s.as_ref().into()), 1)),
            Tok::Star => {
                self.uses_payload = true;
                Ok((Expr::Star, 1))
            }
            Tok::Var(name) => match self.vars.iter().position(|v| v.as_ref() == name) {
                Some(slot) => Ok((Expr::Var(slot, name.into()), 1)),
                None => Err(self.error(at, SqlErrorKind::UnknownVariable(name.into()))),
            },
            Tok::LParen => {
                if self.peek_is_kw("select")? {
                    self.needs_v2(at, "a nested SELECT")?;
                    self.enter(at)?;
                    let nested = self.nested_select();
                    self.leave();
                    let (select, depth) = nested?;
                    self.expect(&Tok::RParen, "')'")?;
                    return Ok((Expr::Select(Box::new(select)), self.depth(depth + 1, at)?));
                }
                let inner = self.expr()?;
                self.expect(&Tok::RParen, "')'")?;
                Ok(inner)
            }
            Tok::LBrace => {
                self.needs_v2(at, "an object literal")?;
                self.enter(at)?;
                let members = self.object_literal();
                self.leave();
                members
            }
            Tok::LBracket => {
                self.needs_v2(at, "an array literal")?;
                self.enter(at)?;
                let items = self.array_literal();
                self.leave();
                items
            }
            Tok::Ident(word) => self.word(word, at),
            other => Err(self.unexpected(&other, at, "an expression")),
        }
    }

    fn number(&self, text: &str, at: usize) -> Result<Expr, SqlError> {
        let invalid = || self.error(at, SqlErrorKind::InvalidNumber(text.to_string()));
        if !text.contains(['.', 'e', 'E']) {
            if let Ok(i) = text.parse::<i128>() {
                return Ok(Expr::Int(i));
            }
        }
        // A literal written with a decimal point or an exponent is a Decimal
        // in both versions, even when it is whole: `10.0 / 4` is 2.5, the
        // Decimal division the author asked for. 2016-03-23's "whole numbers
        // are Ints" applies to the values a statement reads and produces
        // (payload numbers, results, output), not to how a literal is typed.
        Dec::parse(text).map(Expr::Dec).ok_or_else(invalid)
    }

    fn word(&mut self, word: &'s str, at: usize) -> Parsed {
        let lower = word.to_ascii_lowercase();
        match lower.as_str() {
            "true" => return Ok((Expr::Bool(true), 1)),
            "false" => return Ok((Expr::Bool(false), 1)),
            "null" => return Ok((Expr::Null, 1)),
            "case" => return self.case(at),
            _ => {}
        }
        if RESERVED.contains(&lower.as_str()) {
            return Err(self.unexpected(&Tok::Ident(word), at, "an expression"));
        }
        if self.peek()?.0 == Tok::LParen {
            self.next()?;
            if lower == "cast" {
                return self.cast(at);
            }
            return self.call(word, &lower, at);
        }
        self.uses_payload = true;
        Ok((Expr::Field(word.into()), 1))
    }

    fn case(&mut self, at: usize) -> Parsed {
        self.enter(at)?;
        let result = self.case_body(at);
        self.leave();
        result
    }

    fn case_body(&mut self, at: usize) -> Parsed {
        let mut depth = 1;
        let operand = if self.peek_is_kw("when")? {
            None
        } else {
            let (e, d) = self.expr()?;
            depth = depth.max(d + 1);
            Some(e)
        };
        let mut whens = Vec::new();
        while self.eat_kw("when")? {
            let (when, d1) = self.expr()?;
            self.expect_kw("then", "THEN")?;
            let (then, d2) = self.expr()?;
            depth = depth.max(d1.max(d2) + 1);
            whens.push((when, then));
        }
        if whens.is_empty() {
            let (tok, at) = self.next()?;
            return Err(self.unexpected(&tok, at, "WHEN"));
        }
        let otherwise = if self.eat_kw("else")? {
            let (e, d) = self.expr()?;
            depth = depth.max(d + 1);
            Some(e)
        } else {
            None
        };
        self.expect_kw("end", "END")?;
        Ok((
            Expr::Case(Box::new(Case {
                operand,
                whens,
                otherwise,
            })),
            self.depth(depth, at)?,
        ))
    }

    fn cast(&mut self, at: usize) -> Parsed {
        let (e, d) = self.expr()?;
        self.expect_kw("as", "AS")?;
        let (tok, ty_at) = self.next()?;
        let Tok::Ident(name) = tok else {
            return Err(self.unexpected(&tok, ty_at, "a type name"));
        };
        let ty = match name.to_ascii_lowercase().as_str() {
            "string" | "nvarchar" | "text" | "ntext" | "varchar" => CastType::String,
            "int" | "integer" => CastType::Int,
            "double" => CastType::Double,
            "decimal" => {
                self.needs_v2(ty_at, "cast to Decimal")?;
                CastType::Decimal
            }
            "bool" | "boolean" => {
                self.needs_v2(ty_at, "cast to Boolean")?;
                CastType::Bool
            }
            _ => return Err(self.error(ty_at, SqlErrorKind::UnknownType(name.into()))),
        };
        self.expect(&Tok::RParen, "')'")?;
        Ok((Expr::Cast(Box::new(e), ty), self.depth(d + 1, at)?))
    }

    fn call(&mut self, name: &str, lower: &str, at: usize) -> Parsed {
        let entry = match functions::lookup(lower) {
            Lookup::Found(entry) => entry,
            Lookup::NeedsAws(reason) => {
                return Err(self.error(
                    at,
                    SqlErrorKind::Unsupported {
                        name: lower.to_string(),
                        reason,
                    },
                ))
            }
            Lookup::Unknown => {
                return Err(self.error(at, SqlErrorKind::UnknownFunction(name.into())))
            }
        };
        if entry.since_2016 {
            self.needs_v2(at, &format!("function {lower}()"))?;
        }
        let mut args = Vec::new();
        let mut depth = 1;
        if !self.eat(&Tok::RParen)? {
            loop {
                let (arg, d) = self.expr()?;
                depth = depth.max(d + 1);
                args.push(arg);
                if self.eat(&Tok::RParen)? {
                    break;
                }
                self.expect(&Tok::Comma, "',' or ')'")?;
            }
        }
        if entry.func == Func::Decode
            && (args.len() > 2
                || matches!(args.get(1), Some(Expr::Str(s)) if s.eq_ignore_ascii_case("proto")))
        {
            return Err(self.error(
                at,
                SqlErrorKind::Unsupported {
                    name: "decode(*, 'proto', …)".into(),
                    reason: "it reads the protobuf descriptor from Amazon S3",
                },
            ));
        }
        let arity_ok = (entry.min_args..=entry.max_args).contains(&args.len());
        let regex = match (entry.func, args.get(1)) {
            (
                Func::RegexpMatches | Func::RegexpReplace | Func::RegexpSubstr,
                Some(Expr::Str(pattern)),
            ) => {
                let compiled = functions::compile_regex(pattern)
                    .map_err(|e| self.error(at, SqlErrorKind::InvalidRegex(e)))?;
                Some(Arc::new(compiled))
            }
            _ => None,
        };
        Ok((
            Expr::Call(Box::new(Call {
                func: entry.func,
                name: name.into(),
                args,
                arity_ok,
                regex,
            })),
            self.depth(depth, at)?,
        ))
    }

    fn object_literal(&mut self) -> Parsed {
        let mut members: Vec<(Box<str>, Expr)> = Vec::new();
        let mut depth = 1;
        if self.eat(&Tok::RBrace)? {
            return Ok((Expr::Object(members), depth));
        }
        loop {
            let (tok, at) = self.next()?;
            let key: Box<str> = match tok {
                Tok::Str(s) => s.as_ref().into(),
                Tok::Ident(s) => s.into(),
                other => return Err(self.unexpected(&other, at, "an object key")),
            };
            self.expect(&Tok::Colon, "':'")?;
            let (value, d) = self.expr()?;
            depth = self.depth(depth.max(d + 1), at)?;
            // A repeated key keeps its last value, as JSON parsers do.
            members.retain(|(k, _)| *k != key);
            members.push((key, value));
            if self.eat(&Tok::RBrace)? {
                return Ok((Expr::Object(members), depth));
            }
            self.expect(&Tok::Comma, "',' or '}'")?;
        }
    }

    fn array_literal(&mut self) -> Parsed {
        let mut items = Vec::new();
        let mut depth = 1;
        if self.eat(&Tok::RBracket)? {
            return Ok((Expr::Array(items), depth));
        }
        loop {
            let at = self.peek()?.1;
            let (item, d) = self.expr()?;
            depth = self.depth(depth.max(d + 1), at)?;
            items.push(item);
            if self.eat(&Tok::RBracket)? {
                return Ok((Expr::Array(items), depth));
            }
            self.expect(&Tok::Comma, "',' or ']'")?;
        }
    }

    /// `SELECT [VALUE] items FROM expr [WHERE cond]` inside parentheses.
    fn nested_select(&mut self) -> Result<(Select, usize), SqlError> {
        self.expect_kw("select", "SELECT")?;
        let (value, items, item_depth) = self.select_list()?;
        self.expect_kw("from", "FROM")?;
        let (from, from_depth) = self.expr()?;
        let mut depth = item_depth.max(from_depth);
        let filter = if self.eat_kw("where")? {
            let (f, d) = self.expr()?;
            depth = depth.max(d);
            Some(f)
        } else {
            None
        };
        Ok((
            Select {
                value,
                items,
                from: Some(from),
                filter,
            },
            depth + 1,
        ))
    }
}

/// The output key of an unaliased SELECT item: the field or member name, the
/// function name, the variable name; otherwise `_<position>`.
fn default_key(expr: &Expr, position: usize) -> Box<str> {
    match expr {
        Expr::Field(name) | Expr::Member(_, name) | Expr::Var(_, name) => name.clone(),
        Expr::Call(call) => call.name.clone(),
        _ => format!("_{position}").into(),
    }
}
