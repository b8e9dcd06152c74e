//! What travels through the broker: a message as published, its copy on its
//! way to one subscriber, and the subscription that decides where it goes.
//! A leaf: every other module of the broker may use it, it uses none of them.

use bytes::Bytes;
use roost_mqtt::{PublishProperties, QoS, SubscriptionOptions};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// One message as it travels from a publisher to its subscribers.
#[derive(Clone, Debug)]
pub struct Message {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// The MQTT 5 properties forwarded to subscribers (no topic alias, no
    /// subscription identifiers: those are per connection).
    pub properties: PublishProperties,
    /// The publishing client id, for MQTT 5 No Local and IoT SQL clientid().
    pub publisher: Option<String>,
    /// Who published it (certificate id), for IoT SQL principal().
    pub principal: Option<String>,
    /// When the MQTT 5 message expiry runs out.
    pub expires_at: Option<Instant>,
    /// Its sequence in the cluster's message stream, when a cluster node's
    /// link stored it there (roost-nats, JetStream); 0 otherwise. A
    /// persistent session's place in that stream is the lowest of these it
    /// still holds (`cluster.rs`).
    pub stored_seq: u64,
}

impl Message {
    pub fn new(topic: impl Into<String>, payload: impl Into<Bytes>, qos: QoS) -> Self {
        Self {
            topic: topic.into(),
            payload: payload.into(),
            qos,
            retain: false,
            properties: PublishProperties::default(),
            publisher: None,
            principal: None,
            expires_at: None,
            stored_seq: 0,
        }
    }

    pub(crate) fn expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// A message on its way to one subscriber.
#[derive(Clone, Debug)]
pub(crate) struct Outgoing {
    pub message: Arc<Message>,
    /// The QoS it is delivered at: the lower of the publish and the subscription.
    pub qos: QoS,
    /// The RETAIN flag as sent to this subscriber.
    pub retain: bool,
    /// Set when the message is sent again after a reconnect.
    pub dup: bool,
    /// The MQTT 5 Subscription Identifiers of the subscriptions it matched
    /// (spec 3.3.4), sent with it; empty for none.
    pub subscription_ids: Vec<u32>,
    /// Its place in a durable session's journal (1, 2, …); 0 when the
    /// message is not journaled (QoS 0, or a session that is not durable).
    pub seq: u64,
}

/// Wall-clock Unix milliseconds.
pub(crate) fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// One subscription of a session: its options, and its MQTT 5 Subscription
/// Identifier (full profile), returned with every message it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Subscription {
    pub options: SubscriptionOptions,
    pub identifier: Option<u32>,
}
