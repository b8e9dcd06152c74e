//! Why a topic name or topic filter was refused.
//!
//! Each variant is one cause a client can act on. The broker turns any of them
//! into the wire answer of the packet that carried the string: a PUBLISH with a
//! bad topic name is a protocol error (MQTT 5 reason `0x90` Topic Name invalid,
//! or closing the connection on 3.1.1), and a bad filter in SUBSCRIBE gets
//! `0x8F` Topic Filter invalid (`0x80` on 3.1.1). The `Display` text never echoes
//! the string itself: topics are client-chosen and can be long, and errors end up
//! in logs.

/// A topic name or topic filter that cannot be accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// Zero bytes long. MQTT requires at least one character; `/` alone is fine.
    #[error("topic is empty")]
    Empty,
    /// Longer than the limit, counted in UTF-8 bytes (after any prefix that is
    /// exempt: Basic Ingest's `$aws/rules/<rule>/`, a shared filter's
    /// `$share/<group>/`).
    #[error("topic is {length} bytes long; the limit is {limit}")]
    TooLong { length: usize, limit: usize },
    /// More levels (one more than the number of `/`) than the limit allows.
    #[error("topic has {levels} levels; the limit is {limit}")]
    TooManyLevels { levels: usize, limit: usize },
    /// Contains U+0000, which MQTT forbids in every UTF-8 string.
    #[error("topic contains the null character U+0000")]
    NullCharacter,
    /// A topic name (what PUBLISH carries) contains `+` or `#`.
    #[error("a topic name must not contain the wildcards '+' or '#'")]
    WildcardInTopicName,
    /// `#` that is not a whole level of its own, or not the last level.
    #[error("'#' must be the last level of a topic filter and alone in that level")]
    MisplacedMultiLevelWildcard,
    /// `+` sharing its level with other characters (`sport+`).
    #[error("'+' must occupy a whole level of a topic filter")]
    MisplacedSingleLevelWildcard,
    /// `$share/<group>/...` whose group is empty or contains `+` or `#`.
    #[error("the share name of a shared subscription must be non-empty and contain no '+' or '#'")]
    InvalidShareName,
    /// A share name longer than the byte limit (the limit that applies to the
    /// filter applies to the share name on its own).
    #[error("the share name is {length} bytes long; the limit is {limit}")]
    ShareNameTooLong { length: usize, limit: usize },
    /// `$share/<group>` or `$share/<group>/` with no topic filter after it.
    #[error("a shared subscription needs a topic filter after '$share/<group>/'")]
    MissingSharedFilter,
}
