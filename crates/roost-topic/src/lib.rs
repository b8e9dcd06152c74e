//! MQTT topic names and topic filters, the way AWS IoT Core treats them.
//!
//! What this crate is for: deciding whether a topic name ([`validate_topic_name`])
//! or a topic filter ([`validate_topic_filter`]) is acceptable under AWS IoT's
//! limits ([`TopicLimits`]: 256 bytes, 8 levels, Basic Ingest's prefix exempt) or
//! plain MQTT's; whether a filter matches a topic ([`matches`]), with AWS's
//! reading of `#` or the specification's ([`MatchMode`]); and holding every
//! subscription of the broker in a [`SubscriptionIndex`] that finds the
//! subscribers of a PUBLISH without looking at the ones that don't match. The
//! broker routes every message through the index; the rules engine matches each
//! rule's FROM filter with [`matches`] and recognises Basic Ingest topics with
//! [`basic_ingest`].
//!
//! What it must never do: any I/O; panic on any input string; allocate while
//! matching. It does not authorize: a reserved `$aws/...` topic is well-formed
//! here, and whether a client may use it is the policy engine's question.
//!
//! ```
//! use roost_topic::*;
//!
//! let limits = TopicLimits::default(); // AWS's
//! validate_topic_name("sensor/temperature/room1", &limits).unwrap();
//! let filter = validate_topic_filter("$share/workers/sensor/#", &limits).unwrap();
//! assert_eq!(filter.share_group, Some("workers"));
//! assert_eq!(filter.filter, "sensor/#");
//!
//! // AWS: `#` does not match its parent level; MQTT: it does.
//! assert!(matches("sensor/#", "sensor/", MatchMode::Aws));
//! assert!(!matches("sensor/#", "sensor", MatchMode::Aws));
//! assert!(matches("sensor/#", "sensor", MatchMode::Mqtt));
//!
//! let mut index = SubscriptionIndex::new(MatchMode::Aws);
//! index.insert("sensor/+/room1", "client-a", 1u8);
//! index.insert("$share/workers/sensor/#", "client-b", 0u8);
//! index.insert("$share/workers/sensor/#", "client-c", 0u8);
//! let mut got = Vec::new();
//! index.for_each_match("sensor/temperature/room1", |filter, client, qos| {
//!     got.push((filter.to_string(), *client, *qos));
//! });
//! got.sort();
//! assert_eq!(got, [
//!     ("$share/workers/sensor/#".to_string(), "client-b", 0), // one member per group
//!     ("sensor/+/room1".to_string(), "client-a", 1),
//! ]);
//! ```
#![forbid(unsafe_code)]

mod error;
mod index;
mod matching;
mod reserved;
mod validate;

pub use error::TopicError;
pub use index::SubscriptionIndex;
pub use matching::{matches, MatchMode};
pub use reserved::{
    basic_ingest, is_reserved, topic_level, BasicIngest, BASIC_INGEST_PREFIX, MAX_RULE_NAME_BYTES,
};
pub use validate::{
    validate_topic_filter, validate_topic_name, Filter, TopicLimits, AWS_MAX_TOPIC_BYTES,
    AWS_MAX_TOPIC_LEVELS, MQTT_MAX_TOPIC_BYTES, SHARE_PREFIX,
};
