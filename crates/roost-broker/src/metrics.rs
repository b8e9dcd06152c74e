//! The gateway's counters: every refusal and every dropped message is
//! counted here, so nothing disappears silently.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($name:ident: $doc:literal),* $(,)?) => {
        #[derive(Debug, Default)]
        pub(crate) struct Metrics { $(#[doc = $doc] pub $name: AtomicU64,)* }

        /// A point-in-time copy of the counters.
        #[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
        pub struct MetricsSnapshot { $(#[doc = $doc] pub $name: u64,)* pub sessions: u64 }

        impl Metrics {
            pub fn snapshot(&self, sessions: usize) -> MetricsSnapshot {
                MetricsSnapshot { $($name: self.$name.load(Ordering::Relaxed),)* sessions: sessions as u64 }
            }
        }

        impl MetricsSnapshot {
            /// Every value with its name and description, for exporters.
            pub fn fields(&self) -> Vec<Field> {
                vec![
                    $(Field { name: stringify!($name), help: $doc, value: self.$name, gauge: GAUGES.contains(&stringify!($name)) },)*
                    Field { name: "sessions", help: "sessions (connected or persistent), now", value: self.sessions, gauge: true },
                ]
            }
        }
    };
}

/// One value of a [`MetricsSnapshot`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub help: &'static str,
    pub value: u64,
    /// A level that goes up and down (else a count that only grows).
    pub gauge: bool,
}

/// The values that are levels, not counts.
const GAUGES: &[&str] = &["connections_current", "state_largest_batch"];

counters! {
    connections_current: "connections past CONNACK, now open",
    tls_handshake_failures: "TLS handshakes that failed",
    tls_handshake_timeouts: "TLS handshakes cut for taking too long",
    certificates_refused: "handshakes with an unknown, inactive, revoked, expired or not yet valid certificate",
    connect_timeouts: "connections that sent no CONNECT in time",
    connects_refused: "CONNECTs refused (not authorized, bad client id, bad will)",
    protocol_errors: "connections closed for a malformed packet or a protocol violation",
    keepalive_timeouts: "connections closed for keep-alive timeout",
    takeovers: "connections closed because another took over the client id",
    kicked_certificate: "connections closed because their certificate left ACTIVE",
    kicked_expired: "connections closed because their certificate's validity ended",
    wills_refused: "wills not sent because the certificate was no longer ACTIVE or the policies no longer allowed the will",
    messages_in: "messages accepted for routing",
    messages_from_peers: "messages from NATS routed to this node's subscribers: other nodes' messages, and any node's messages for a shared subscription NATS chose this node for",
    messages_delivered: "messages written to subscribers",
    publish_denied: "PUBLISHes refused by policy, or (full profile) sent to a $SYS or $share topic",
    subscribe_denied: "topic filters refused by policy",
    receive_denied: "deliveries skipped because iot:Receive was denied",
    dropped_queue_full: "QoS 1 messages dropped because a session's queue was full (an offline session's bound, or twice a connected one's)",
    dropped_qos0_backlog: "QoS 0 messages dropped because a session's queue was full (offline, or twice a connected one's bound)",
    dropped_session_ended: "messages still queued when their session ended (a clean session's connection closed, a session expired or was replaced)",
    publishers_slowed: "times a publisher was slowed (its socket left unread) because a subscriber's queue was past its mark",
    slow_consumers_disconnected: "subscribers disconnected for keeping a publisher waiting past the slow-consumer timeout",
    dropped_expired: "messages dropped because their MQTT 5 expiry passed while queued",
    dropped_too_large: "messages not sent to a subscriber because they were larger than the Maximum Packet Size it announced (MQTT 5)",
    authorization_refreshes: "times a connection re-read its policies after a registry change that may concern it",
    authz_decisions_replaced: "authorization decisions a connection forgot to make room for a newer one (it remembers its last 8)",
    registry_events_lagged: "registry change events missed by the gateway (all connections re-checked)",
    sessions_expired: "persistent sessions removed after their expiry",
    state_commits: "transactions committed to gateway.db by the state writer",
    state_changes_committed: "durable state changes committed (divided by state_commits: the mean batch)",
    state_largest_batch: "the most changes committed in one transaction",
    state_commit_failures: "gateway.db transactions that failed (each is retried)",
    state_queue_waits: "times a publisher waited because the state writer's queue was full",
    state_answers_failed: "QoS 1 publishes, subscribes and unsubscribes answered with an error because their state was not saved",
}
