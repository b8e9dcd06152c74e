//! MQTT topics as NATS subjects.
//!
//! NATS splits subjects into tokens at `.`, forbids empty tokens and
//! whitespace, reads a whole-token `*` or `>` as a wildcard, and keeps
//! `$`-subjects (`$JS`, `$KV`, `$SYS`) for itself. MQTT splits topics into
//! levels at `/`, allows empty levels and any UTF-8 but U+0000 in a level, and
//! keeps `$`-topics away from filters that start with a wildcard. The
//! encoding bridges the two, one level to one token:
//!
//! - every subject starts with the space's prefix, then a kind token: `m` for
//!   ordinary topics, `d` for topics whose first level starts with `$`. A
//!   filter whose first level is a wildcard subscribes under `m` only, which is
//!   MQTT's `$` rule without any further check;
//! - a level keeps the bytes `A-Z a-z 0-9 _ -` as they are and writes every
//!   other byte as `=` and two upper-case hex digits (`.` is `=2E`, `$` is
//!   `=24`, `*` is `=2A`); an empty level is the token `=` alone;
//! - in a filter, `+` is `*` and a last-level `#` is `>`; with MQTT's
//!   matching, where `a/#` also matches `a`, the filter needs a second
//!   subscription for the parent (`a`), which never overlaps the first.
//!
//! Encoded tokens hold only `A-Z a-z 0-9 _ - =`, so an encoded topic (without
//! the prefix) is also a valid JetStream KV key. The encoding is a bijection:
//! decoding refuses anything encoding would not have produced (lower-case hex,
//! an escaped byte that needed none), so two subjects never name one topic.

use roost_topic::{MatchMode, TopicError};
use std::fmt::Write as _;

/// The longest subject this encoding produces. nats-server refuses a
/// protocol line longer than its `max_control_line` (4 KiB by default), and
/// the subject shares that line with the reply subject and sizes.
pub const MAX_SUBJECT_BYTES: usize = 3072;

/// Why a topic, filter, prefix or subject has no counterpart.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    /// The prefix must be one or more `.`-separated tokens of `A-Z a-z 0-9 _ -`.
    #[error("the NATS subject prefix must be non-empty tokens of letters, digits, '_' and '-', separated by '.'")]
    InvalidPrefix,
    /// Not a well-formed MQTT topic name or filter.
    #[error(transparent)]
    Topic(#[from] TopicError),
    /// The encoded subject would be longer than [`MAX_SUBJECT_BYTES`]
    /// (escaping can triple a topic's length).
    #[error("the topic's NATS subject would be {length} bytes long; the limit is {limit}")]
    TooLong { length: usize, limit: usize },
    /// Not a subject this space produces: another prefix or kind, a bad
    /// escape, or bytes that do not make a topic.
    #[error("not a subject of this space: {0}")]
    NotOurs(&'static str),
}

/// The NATS subscriptions that stand for one MQTT topic filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterSubjects {
    /// One subject, or two when `#` must also match its parent level. A
    /// message matches at most one of them.
    pub subjects: Vec<String>,
    /// The NATS queue group of a shared subscription: its group and filter
    /// (`<group>/<filter>`) escaped like one level.
    pub queue_group: Option<String>,
}

/// One cluster's subjects: everything under a prefix of the operator's
/// choosing, so that a NATS system can carry other traffic too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubjectSpace {
    prefix: String,
}

const ORDINARY: &str = "m";
const DOLLAR: &str = "d";
/// Not a topic: the nodes' announcements to each other.
const CONTROL: &str = "c";
/// Messages stored in the cluster's stream ([`SubjectSpace::stored`]).
const STORED: &str = "q";

impl SubjectSpace {
    pub fn new(prefix: &str) -> Result<Self, SubjectError> {
        let valid = !prefix.is_empty()
            && prefix
                .split('.')
                .all(|token| !token.is_empty() && token.bytes().all(is_plain));
        if valid {
            Ok(SubjectSpace {
                prefix: prefix.to_owned(),
            })
        } else {
            Err(SubjectError::InvalidPrefix)
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The subjects every message of this space travels under: a node
    /// subscribed to both hears every topic, and nothing else.
    pub fn all_messages(&self) -> [String; 2] {
        [ORDINARY, DOLLAR].map(|kind| format!("{}.{kind}.>", self.prefix))
    }

    /// The space of QoS 1/2 messages stored in the cluster's stream:
    /// `PREFIX.q.m.…` and `PREFIX.q.d.…`, apart from the core subjects
    /// (`q` is a kind of its own, so [`SubjectSpace::all_messages`] never
    /// hears them), encoded alike.
    pub fn stored(&self) -> SubjectSpace {
        SubjectSpace {
            prefix: format!("{}.{STORED}", self.prefix),
        }
    }

    /// A name for a JetStream stream or KV bucket of this space:
    /// `<prefix>-<purpose>`, the prefix's `.` written as `_`.
    pub fn resource_name(&self, purpose: &str) -> String {
        format!("{}-{purpose}", self.prefix.replace('.', "_"))
    }

    /// The subject of the nodes' own announcements named `name` (a plain
    /// token), apart from every message subject.
    pub fn control_subject(&self, name: &str) -> String {
        format!("{}.{CONTROL}.{name}", self.prefix)
    }

    /// The subject a message published on `topic` travels on.
    pub fn topic_subject(&self, topic: &str) -> Result<String, SubjectError> {
        roost_topic::validate_topic_name(topic, &roost_topic::TopicLimits::general())?;
        let mut out = self.head(topic.starts_with('$'));
        for level in topic.split('/') {
            out.push('.');
            push_level(&mut out, level);
        }
        checked_length(out)
    }

    /// The topic a subject of this space stands for.
    pub fn topic_of(&self, subject: &str) -> Result<String, SubjectError> {
        let rest = subject
            .strip_prefix(self.prefix.as_str())
            .and_then(|rest| rest.strip_prefix('.'))
            .ok_or(SubjectError::NotOurs("another prefix"))?;
        let (kind, levels) = rest
            .split_once('.')
            .ok_or(SubjectError::NotOurs("no topic levels"))?;
        let mut bytes = Vec::with_capacity(levels.len());
        for (i, token) in levels.split('.').enumerate() {
            if i > 0 {
                bytes.push(b'/');
            }
            decode_level(token, &mut bytes)?;
        }
        let topic = String::from_utf8(bytes).map_err(|_| SubjectError::NotOurs("not UTF-8"))?;
        let dollar = topic.starts_with('$');
        if (kind == DOLLAR) != dollar || !(kind == DOLLAR || kind == ORDINARY) {
            return Err(SubjectError::NotOurs("wrong kind token"));
        }
        roost_topic::validate_topic_name(&topic, &roost_topic::TopicLimits::general())
            .map_err(|_| SubjectError::NotOurs("not a topic name"))?;
        Ok(topic)
    }

    /// The NATS subscriptions that receive exactly the messages `filter`
    /// matches under `mode`.
    pub fn filter_subscriptions(
        &self,
        filter: &str,
        mode: MatchMode,
    ) -> Result<FilterSubjects, SubjectError> {
        let parsed =
            roost_topic::validate_topic_filter(filter, &roost_topic::TopicLimits::general())?;
        // NATS merges queue groups of one name across the subjects a message
        // matches; naming each after its whole shared subscription keeps
        // `$share/g/a/+` and `$share/g/a/b` two groups, as MQTT has them.
        let queue_group = parsed.share_group.map(|group| {
            let mut escaped = String::with_capacity(group.len() + parsed.filter.len() + 8);
            push_level(&mut escaped, group);
            escaped.push_str("=2F");
            push_level(&mut escaped, parsed.filter);
            escaped
        });
        let mut subject = self.head(parsed.filter.starts_with('$'));
        let mut parent = None;
        for level in parsed.filter.split('/') {
            match level {
                "+" => subject.push_str(".*"),
                "#" => {
                    if mode == MatchMode::Mqtt && subject.len() > self.prefix.len() + 2 {
                        parent = Some(subject.clone());
                    }
                    subject.push_str(".>");
                }
                _ => {
                    subject.push('.');
                    push_level(&mut subject, level);
                }
            }
        }
        let mut subjects = vec![checked_length(subject)?];
        subjects.extend(parent);
        Ok(FilterSubjects {
            subjects,
            queue_group,
        })
    }

    /// The prefix and kind token.
    fn head(&self, dollar: bool) -> String {
        let mut out = String::with_capacity(self.prefix.len() + 64);
        out.push_str(&self.prefix);
        out.push('.');
        out.push_str(if dollar { DOLLAR } else { ORDINARY });
        out
    }
}

/// A byte that stands for itself in a token.
fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// `text` escaped as one level is (`A-Z a-z 0-9 _ -` kept, other bytes
/// `=HH`, empty `=`): a valid JetStream KV key for any client id, and
/// never two texts to one key.
pub fn key(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    push_level(&mut out, text);
    out
}

fn push_level(out: &mut String, level: &str) {
    if level.is_empty() {
        out.push('=');
        return;
    }
    for b in level.bytes() {
        if is_plain(b) {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "={b:02X}");
        }
    }
}

/// The text [`key`] made `token` from.
pub fn unkey(token: &str) -> Result<String, SubjectError> {
    let mut out = Vec::new();
    decode_token(token, &mut out, true)?;
    String::from_utf8(out).map_err(|_| SubjectError::NotOurs("bytes that are not UTF-8"))
}

fn decode_level(token: &str, out: &mut Vec<u8>) -> Result<(), SubjectError> {
    decode_token(token, out, false)
}

/// Decodes one escaped token; a level never holds `/`, a key may.
fn decode_token(token: &str, out: &mut Vec<u8>, slash: bool) -> Result<(), SubjectError> {
    if token == "=" {
        return Ok(());
    }
    if token.is_empty() {
        return Err(SubjectError::NotOurs("an empty token"));
    }
    let mut bytes = token.bytes();
    while let Some(b) = bytes.next() {
        if is_plain(b) {
            out.push(b);
        } else if b == b'=' {
            let (hi, lo) = (bytes.next(), bytes.next());
            let byte = match (hi.and_then(upper_hex), lo.and_then(upper_hex)) {
                (Some(hi), Some(lo)) => hi << 4 | lo,
                _ => return Err(SubjectError::NotOurs("a bad escape")),
            };
            if is_plain(byte) || (byte == b'/' && !slash) {
                return Err(SubjectError::NotOurs("an escape that is not needed"));
            }
            out.push(byte);
        } else {
            return Err(SubjectError::NotOurs("a byte that is never in a token"));
        }
    }
    Ok(())
}

fn upper_hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn checked_length(subject: String) -> Result<String, SubjectError> {
    if subject.len() > MAX_SUBJECT_BYTES {
        Err(SubjectError::TooLong {
            length: subject.len(),
            limit: MAX_SUBJECT_BYTES,
        })
    } else {
        Ok(subject)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space() -> SubjectSpace {
        SubjectSpace::new("roost").unwrap()
    }

    #[test]
    fn prefixes_are_plain_tokens() {
        for good in ["roost", "a.b-c.d_e", "R1"] {
            assert_eq!(SubjectSpace::new(good).unwrap().prefix(), good);
        }
        for bad in [
            "", ".", "a.", ".a", "a..b", "a b", "a.*", "a.>", "$JS", "a=b",
        ] {
            assert_eq!(
                SubjectSpace::new(bad),
                Err(SubjectError::InvalidPrefix),
                "{bad}"
            );
        }
    }

    #[test]
    fn levels_escape_every_byte_nats_reads() {
        let s = space();
        assert_eq!(s.topic_subject("a.b/*/>").unwrap(), "roost.m.a=2Eb.=2A.=3E");
        assert_eq!(s.topic_subject("/").unwrap(), "roost.m.=.=");
        assert_eq!(s.topic_subject("a b/=").unwrap(), "roost.m.a=20b.=3D");
        assert_eq!(s.topic_subject("é").unwrap(), "roost.m.=C3=A9");
        assert_eq!(s.topic_subject("$SYS").unwrap(), "roost.d.=24SYS");
    }

    #[test]
    fn bad_topics_and_subjects_are_refused() {
        let s = space();
        assert!(matches!(s.topic_subject(""), Err(SubjectError::Topic(_))));
        assert!(matches!(
            s.topic_subject("a/+"),
            Err(SubjectError::Topic(_))
        ));
        for bad in [
            "other.m.a",
            "roost.m",
            "roost.x.a",
            "roost.m.=24a", // a $-topic under the ordinary kind
            "roost.d.a",
            "roost.m.a..b",
            "roost.m.=2e", // lower-case hex
            "roost.m.=41", // 'A' needs no escape
            "roost.m.=2F", // '/' cannot be inside a level
            "roost.m.=2B", // '+' is not in a topic name
            "roost.m.=00", // U+0000
            "roost.m.=FF", // not UTF-8
            "roost.m.=4",
            "roost.m.*",
            "roost.c.connected",
        ] {
            assert!(
                matches!(s.topic_of(bad), Err(SubjectError::NotOurs(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn hash_needs_its_parent_only_under_mqtt_matching() {
        let s = space();
        let aws = s.filter_subscriptions("a/#", MatchMode::Aws).unwrap();
        assert_eq!(aws.subjects, ["roost.m.a.>"]);
        let mqtt = s.filter_subscriptions("a/#", MatchMode::Mqtt).unwrap();
        assert_eq!(mqtt.subjects, ["roost.m.a.>", "roost.m.a"]);
        let all = s.filter_subscriptions("#", MatchMode::Mqtt).unwrap();
        assert_eq!(all.subjects, ["roost.m.>"]);
        let dollar = s
            .filter_subscriptions("$aws/things/+/#", MatchMode::Aws)
            .unwrap();
        assert_eq!(dollar.subjects, ["roost.d.=24aws.things.*.>"]);
        assert_eq!(dollar.queue_group, None);
    }

    #[test]
    fn long_topics_are_refused_before_nats_would() {
        let topic = ".".repeat(MAX_SUBJECT_BYTES / 3);
        assert!(matches!(
            space().topic_subject(&topic),
            Err(SubjectError::TooLong { .. })
        ));
    }
}
