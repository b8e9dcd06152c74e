//! What can go wrong parsing a statement or template, and evaluating one.
//!
//! For: errors a caller can show as they are. [`SqlError`] becomes AWS's
//! `SqlParseException` (its text says where: "line 1, column 12: …");
//! [`EvalError`] is a rule failing on one message, which the rules engine
//! reports through the rule's error action.
//! Never: carry payload contents, which may be large or sensitive.

use thiserror::Error;

/// A statement or template that cannot be accepted.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("line {line}, column {column}: {kind}")]
pub struct SqlError {
    /// 1-based line of the offending text.
    pub line: u32,
    /// 1-based column (in characters) of the offending text.
    pub column: u32,
    pub kind: SqlErrorKind,
}

impl SqlError {
    /// The AWS function that made parsing fail because Roost cannot run it,
    /// if that is why.
    pub fn unsupported_function(&self) -> Option<&str> {
        match &self.kind {
            SqlErrorKind::Unsupported { name, .. } => Some(name),
            _ => None,
        }
    }
}

/// Why a statement or template was rejected.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SqlErrorKind {
    #[error("unexpected {found}, expected {expected}")]
    Unexpected {
        found: String,
        expected: &'static str,
    },
    #[error("unterminated string literal")]
    UnterminatedString,
    #[error("unexpected character {0:?}")]
    InvalidCharacter(char),
    /// A typographic quote, as text copied from a document or a web page
    /// brings: IoT SQL quotes with the plain ASCII ones.
    #[error("unexpected character {0:?} (U+{code:04X}), a typographic quote: IoT SQL quotes strings and topics with a straight single quote ' (and JSON keys with \" or `); retype it", code = *.0 as u32)]
    CurlyQuote(char),
    #[error("invalid number {0}")]
    InvalidNumber(String),
    #[error("unknown function {0}")]
    UnknownFunction(String),
    #[error("not supported by Roost: {name} ({reason})")]
    Unsupported { name: String, reason: &'static str },
    #[error("{0} requires SQL version 2016-03-23")]
    NeedsVersion2016(String),
    #[error("invalid topic filter {filter:?} in FROM: {reason}")]
    InvalidTopicFilter { filter: String, reason: String },
    #[error("unknown type {0} in cast (expected String, Int, Double, Decimal or Boolean)")]
    UnknownType(String),
    #[error("invalid regular expression: {0}")]
    InvalidRegex(String),
    #[error("unknown variable @{0}")]
    UnknownVariable(String),
    #[error("variable @{0} is assigned more than once")]
    DuplicateVariable(String),
    #[error("variable name @{0} is longer than 64 characters")]
    VariableNameTooLong(String),
    #[error("expression nested more than {0} levels deep")]
    TooDeep(usize),
    #[error("text longer than {0} bytes")]
    TooLong(usize),
    #[error("unterminated substitution template (missing '}}')")]
    UnterminatedTemplate,
}

/// A statement or template that failed on one message.
///
/// Most problems with a message are not errors in AWS IoT SQL: a missing
/// field or a function given the wrong type is Undefined, and the rule goes
/// on. These are the cases where there is no sensible output.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EvalError {
    /// SQL 2015-10-08 cannot send an array as the whole output.
    #[error("SELECT VALUE produced an array, which needs SQL version 2016-03-23")]
    ArrayOutputNeedsVersion2016,
    /// A computed value outgrew a bound that keeps one message from using
    /// unbounded memory.
    #[error("{what} would be larger than {limit} bytes")]
    TooLarge { what: &'static str, limit: usize },
}
