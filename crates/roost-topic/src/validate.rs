//! Topic names and topic filters: what a well-formed one is, and the size limits.
//!
//! For: deciding whether a PUBLISH topic, a SUBSCRIBE filter or a rule's FROM
//! filter may be accepted, and splitting a shared subscription
//! (`$share/<group>/<filter>`) into its group and filter.
//! Never: allocate, or decide who may use a topic (reserved `$aws/...` topics are
//! well-formed here; the policy engine and the broker refuse them).
//!
//! The limits are checked before the string is scanned, so the work done on a
//! hostile 64 KiB topic under AWS limits is constant.

use crate::error::TopicError;
use crate::reserved::basic_ingest;

/// AWS IoT's limit on a topic name or filter, in UTF-8 bytes.
pub const AWS_MAX_TOPIC_BYTES: usize = 256;
/// AWS IoT's limit on levels: at most 7 forward slashes.
pub const AWS_MAX_TOPIC_LEVELS: usize = 8;
/// MQTT's own ceiling: a UTF-8 string on the wire has a 16-bit length.
pub const MQTT_MAX_TOPIC_BYTES: usize = 65_535;
/// How a shared subscription's filter starts (MQTT 5, §4.8.2).
pub const SHARE_PREFIX: &str = "$share/";

/// How long, and how deep, a topic name or filter may be.
///
/// Both limits exempt a Basic Ingest prefix `$aws/rules/<ruleName>/`, as AWS does,
/// and a shared filter's `$share/<group>/` prefix (UNCONFIRMED for AWS: chosen so
/// that any filter a client may subscribe to alone it may also share; the share
/// name is held to `max_bytes` on its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TopicLimits {
    /// Longest topic in UTF-8 bytes.
    pub max_bytes: usize,
    /// Most levels; a topic has one more level than it has `/`.
    pub max_levels: usize,
}

impl TopicLimits {
    /// AWS IoT Core's limits: 256 bytes, 8 levels. The default.
    pub const fn aws() -> Self {
        TopicLimits {
            max_bytes: AWS_MAX_TOPIC_BYTES,
            max_levels: AWS_MAX_TOPIC_LEVELS,
        }
    }

    /// Plain MQTT: the wire format's 65,535 bytes and no level cap.
    pub const fn general() -> Self {
        TopicLimits {
            max_bytes: MQTT_MAX_TOPIC_BYTES,
            max_levels: usize::MAX,
        }
    }
}

impl Default for TopicLimits {
    fn default() -> Self {
        TopicLimits::aws()
    }
}

/// A topic filter that passed [`validate_topic_filter`], split into its parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Filter<'a> {
    /// The share name of a `$share/<group>/<filter>` subscription; `None` for an
    /// ordinary one.
    pub share_group: Option<&'a str>,
    /// The filter topics are matched against: the whole input for an ordinary
    /// subscription, the part after `$share/<group>/` for a shared one.
    pub filter: &'a str,
}

impl Filter<'_> {
    /// Whether this is a shared subscription.
    pub fn is_shared(&self) -> bool {
        self.share_group.is_some()
    }

    /// Whether the filter has a `+` or `#` level. AWS sends stored retained
    /// messages on SUBSCRIBE only to filters without wildcards.
    pub fn has_wildcards(&self) -> bool {
        // After validation a wildcard byte can only be a whole level.
        self.filter.bytes().any(|b| b == b'+' || b == b'#')
    }
}

/// Checks a topic name, as carried by PUBLISH (or a will, or an HTTP publish):
/// non-empty, no U+0000, no `+` or `#`, and within `limits`.
pub fn validate_topic_name(topic: &str, limits: &TopicLimits) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    let counted = counted_part(topic);
    check_length(counted, limits)?;
    for b in topic.bytes() {
        match b {
            0 => return Err(TopicError::NullCharacter),
            b'+' | b'#' => return Err(TopicError::WildcardInTopicName),
            _ => {}
        }
    }
    check_levels(counted, limits)
}

/// Checks a topic filter, as carried by SUBSCRIBE or a rule's FROM clause, and
/// splits off a shared subscription's group.
///
/// Rules (MQTT 3.1.1 §4.7, MQTT 5 §4.7 and §4.8.2): non-empty; no U+0000; `#` only
/// as the whole last level; `+` only as a whole level; empty levels are fine
/// (`a//b`, `/a`, `a/`). `$share/<group>/<filter>` needs a non-empty group
/// without `+` or `#` (it cannot contain `/`: the first `/` ends it) and a
/// non-empty filter that follows the same rules. `$share` alone is an ordinary
/// filter naming the topic `$share`.
pub fn validate_topic_filter<'a>(
    filter: &'a str,
    limits: &TopicLimits,
) -> Result<Filter<'a>, TopicError> {
    let parsed = split_shared(filter)?;
    if let Some(group) = parsed.share_group {
        if group.len() > limits.max_bytes {
            return Err(TopicError::ShareNameTooLong {
                length: group.len(),
                limit: limits.max_bytes,
            });
        }
    }
    let counted = counted_part(parsed.filter);
    check_length(counted, limits)?;
    check_filter_syntax(parsed.filter)?;
    check_levels(counted, limits)?;
    Ok(parsed)
}

/// [`validate_topic_filter`] without the limits: is the filter well-formed at all.
/// The subscription index and [`crate::matches`] use it because they serve both
/// AWS and general limits; what they were given was validated by the caller.
pub(crate) fn parse_filter(filter: &str) -> Result<Filter<'_>, TopicError> {
    let parsed = split_shared(filter)?;
    check_filter_syntax(parsed.filter)?;
    Ok(parsed)
}

/// Whether `topic` could be a topic name, limits aside. Matching answers `false`
/// for anything else rather than guess what a wildcard in a topic name means.
pub(crate) fn is_topic_name_syntax(topic: &str) -> bool {
    !topic.is_empty() && !topic.bytes().any(|b| matches!(b, 0 | b'+' | b'#'))
}

fn split_shared(filter: &str) -> Result<Filter<'_>, TopicError> {
    if filter.is_empty() {
        return Err(TopicError::Empty);
    }
    let Some(after) = filter.strip_prefix(SHARE_PREFIX) else {
        return Ok(Filter {
            share_group: None,
            filter,
        });
    };
    let Some(slash) = after.find('/') else {
        return Err(if after.is_empty() {
            TopicError::InvalidShareName
        } else {
            TopicError::MissingSharedFilter
        });
    };
    let (group, inner) = (&after[..slash], &after[slash + 1..]);
    if group.is_empty() || group.bytes().any(|b| b == b'+' || b == b'#') {
        return Err(TopicError::InvalidShareName);
    }
    if group.bytes().any(|b| b == 0) {
        return Err(TopicError::NullCharacter);
    }
    if inner.is_empty() {
        return Err(TopicError::MissingSharedFilter);
    }
    Ok(Filter {
        share_group: Some(group),
        filter: inner,
    })
}

fn check_filter_syntax(filter: &str) -> Result<(), TopicError> {
    let bytes = filter.as_bytes();
    let last = bytes.len().saturating_sub(1);
    for (i, &b) in bytes.iter().enumerate() {
        let starts_level = i == 0 || bytes[i - 1] == b'/';
        match b {
            0 => return Err(TopicError::NullCharacter),
            b'#' if !(starts_level && i == last) => {
                return Err(TopicError::MisplacedMultiLevelWildcard)
            }
            b'+' if !(starts_level && (i == last || bytes[i + 1] == b'/')) => {
                return Err(TopicError::MisplacedSingleLevelWildcard)
            }
            _ => {}
        }
    }
    Ok(())
}

/// The part of a topic or filter that the limits apply to.
fn counted_part(topic: &str) -> &str {
    basic_ingest(topic).map_or(topic, |ingest| ingest.topic)
}

fn check_length(counted: &str, limits: &TopicLimits) -> Result<(), TopicError> {
    if counted.len() > limits.max_bytes {
        return Err(TopicError::TooLong {
            length: counted.len(),
            limit: limits.max_bytes,
        });
    }
    Ok(())
}

fn check_levels(counted: &str, limits: &TopicLimits) -> Result<(), TopicError> {
    let levels = counted.bytes().filter(|&b| b == b'/').count() + 1;
    if levels > limits.max_levels {
        return Err(TopicError::TooManyLevels {
            levels,
            limit: limits.max_levels,
        });
    }
    Ok(())
}
