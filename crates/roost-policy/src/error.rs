//! Why a policy document was refused.
//!
//! The `Display` text of [`MalformedPolicy`] is what the control plane puts in the
//! `message` of a `MalformedPolicyException`, so it must say what is wrong and where,
//! in words a policy author can act on. It must never echo more of the document than
//! the offending value (documents are bounded, but error bodies end up in logs).

/// AWS's limit on a policy document: 2048 characters, whitespace not counted.
pub const MAX_POLICY_CHARS: usize = 2048;

/// A policy document that cannot be accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MalformedPolicy {
    /// Nothing but whitespace.
    #[error("policy document is empty")]
    Empty,
    /// Over [`MAX_POLICY_CHARS`] characters once whitespace is left out.
    #[error(
        "policy document is {length} characters long not counting whitespace; the limit is {limit}"
    )]
    TooLong { length: usize, limit: usize },
    /// The text is not JSON.
    #[error("invalid JSON at line {line} column {column}: {message}")]
    InvalidJson {
        line: usize,
        column: usize,
        message: String,
    },
    /// Valid JSON that breaks the policy grammar; `path` names the element,
    /// e.g. `Statement[1].Effect`.
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl MalformedPolicy {
    pub(crate) fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        MalformedPolicy::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }
}
