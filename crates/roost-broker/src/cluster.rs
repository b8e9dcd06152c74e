//! What a cluster node's link (roost-nats) keeps outside this node, and the
//! broker's side of it: QoS 1/2 messages stored in the cluster's stream
//! before their PUBACK ([`Confirmation`]), and persistent sessions that
//! move between nodes ([`SessionRecord`]).
//!
//! A node whose link stores messages does not route a QoS 1/2 message it
//! accepted at once: it hands it to the link, answers the publisher when the
//! link confirmed it stored, and routes it when it comes back from the
//! stream, on every node alike, with its sequence there
//! ([`crate::Message::stored_seq`]). A persistent session's place in the
//! stream is then the lowest sequence it still holds (queued or in flight),
//! or, holding none, everything the node has received: the session needs
//! nothing before it. The link writes that place where every node can read
//! it; the node a client reconnects to reads it back, takes the session over
//! and replays the stream from there ([`crate::Broker::deliver_to_session`]).

use crate::message::Subscription;
use crate::session::Session;
use roost_mqtt::{QoS, SubscriptionOptions};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// A boxed future (the link's answers), without a dependency for one type.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Whether the link has stored one message: decided once, by the link;
/// the publisher's answer waits for it.
#[derive(Debug, Default)]
pub struct Confirmation {
    outcome: Mutex<Option<bool>>,
    /// Wakes [`Confirmation::done`].
    decided: Notify,
    /// Wakes the publisher's connection, once registered.
    wake: Mutex<Option<Arc<Notify>>>,
}

impl Confirmation {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// The link's verdict: `true` when the message is stored.
    pub fn confirm(&self, stored: bool) {
        use crate::sync::Locked;
        *self.outcome.locked() = Some(stored);
        self.decided.notify_waiters();
        if let Some(wake) = self.wake.locked().take() {
            wake.notify_one();
        }
    }

    pub(crate) fn outcome(&self) -> Option<bool> {
        use crate::sync::Locked;
        *self.outcome.locked()
    }

    /// Wakes `notify` once decided (at once if it is).
    pub(crate) fn wake_when_done(&self, notify: &Arc<Notify>) {
        use crate::sync::Locked;
        *self.wake.locked() = Some(notify.clone());
        if self.outcome().is_some() {
            notify.notify_one();
        }
    }

    /// Waits for the verdict.
    pub async fn done(&self) -> bool {
        loop {
            let decided = self.decided.notified();
            tokio::pin!(decided);
            decided.as_mut().enable();
            if let Some(outcome) = self.outcome() {
                return outcome;
            }
            decided.await;
        }
    }
}

/// What became of a message handed to the link.
pub enum Forwarded {
    /// Sent to the other nodes; this node routes it itself.
    Sent,
    /// Being stored: the node routes it when it comes back from the link
    /// ([`crate::Broker::deliver_from_peer`]), and its publisher's answer
    /// waits for this.
    Storing(Arc<Confirmation>),
}

/// One subscription of a session, as another node rebuilds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedSubscription {
    pub filter: String,
    pub options: SubscriptionOptions,
    /// Its MQTT 5 Subscription Identifier.
    pub identifier: Option<u32>,
}

/// A persistent session as the cluster keeps it outside its node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    pub client_id: String,
    pub expiry_secs: u64,
    /// When its connection ended (Unix ms); `None` while connected.
    pub disconnected_at: Option<i64>,
    pub subscriptions: Vec<RecordedSubscription>,
    /// The lowest stream sequence of a QoS 1/2 message it holds, queued or
    /// in flight; `None` when it holds none.
    pub oldest_held: Option<u64>,
}

impl SessionRecord {
    /// Whether the session's expiry had passed at `now_ms` (Unix ms).
    pub fn expired(&self, now_ms: i64) -> bool {
        let expiry = i64::try_from(self.expiry_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        self.disconnected_at
            .is_some_and(|at| at.saturating_add(expiry) <= now_ms)
    }

    /// What `session` is now, with the router's `subscriptions` of it.
    pub(crate) fn of(session: &Session, subscriptions: Vec<(String, Subscription)>) -> Self {
        let state = session.lock();
        let oldest_held = state
            .queue
            .iter()
            .chain(state.inflight.iter().map(|i| &i.outgoing))
            .filter(|o| o.qos != QoS::AtMostOnce && o.message.stored_seq > 0)
            .map(|o| o.message.stored_seq)
            .min();
        let disconnected_at = state.disconnected_at.map(|at| {
            let ago = at.elapsed();
            crate::message::unix_ms(std::time::SystemTime::now() - ago)
        });
        Self {
            client_id: session.client_id.clone(),
            expiry_secs: state.expiry.as_secs(),
            disconnected_at,
            subscriptions: subscriptions
                .into_iter()
                .map(|(filter, s)| RecordedSubscription {
                    filter,
                    options: s.options,
                    identifier: s.identifier,
                })
                .collect(),
            oldest_held,
        }
    }
}

/// Asks the cluster, on a node whose sessions live there, which session of
/// `client_id` is current: `Some` when another node left one to rebuild
/// here (the local one, if any, is gone then).
pub(crate) async fn claim(
    shared: &crate::Shared,
    client_id: &str,
    clean_start: bool,
) -> Result<Option<SessionRecord>, String> {
    let Some(link) = shared.peer_link.get().filter(|l| l.keeps_sessions()) else {
        return Ok(None);
    };
    let here = shared.sessions.get(client_id).is_some();
    let moved = link.claim_session(client_id, clean_start, here).await?;
    if moved.is_some() {
        if let Some(stale) = shared.sessions.get(client_id) {
            shared.remove_session(&stale);
        }
    }
    Ok(moved)
}

/// A new session for `record`'s client id with its subscriptions.
pub(crate) fn rebuild(shared: &crate::Shared, record: &SessionRecord) -> Arc<Session> {
    let (session, _) = shared.sessions.open(&record.client_id, true);
    for recorded in &record.subscriptions {
        let subscription = Subscription {
            options: recorded.options,
            identifier: recorded.identifier,
        };
        shared
            .router
            .subscribe(&session, &recorded.filter, subscription, usize::MAX, None);
    }
    session
}

/// The rebuilt session is in place: the link replays what it missed.
pub(crate) fn moved_here(shared: &crate::Shared, client_id: &str) {
    if let Some(link) = shared.peer_link.get() {
        link.session_moved_here(client_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_confirmation_wakes_its_waiters_once_decided() {
        let confirmation = Confirmation::new();
        let wake = Arc::new(Notify::new());
        confirmation.wake_when_done(&wake);
        assert_eq!(confirmation.outcome(), None);
        let waiter = tokio::spawn({
            let c = confirmation.clone();
            async move { c.done().await }
        });
        tokio::task::yield_now().await;
        confirmation.confirm(false);
        assert!(!waiter.await.unwrap());
        // The connection's wake-up was stored as a permit.
        tokio::time::timeout(std::time::Duration::from_secs(1), wake.notified())
            .await
            .unwrap();
        assert_eq!(confirmation.outcome(), Some(false));
    }

    #[test]
    fn a_record_expires_only_once_detached_past_its_expiry() {
        let mut record = SessionRecord {
            client_id: "c".into(),
            expiry_secs: 10,
            disconnected_at: None,
            subscriptions: vec![],
            oldest_held: None,
        };
        assert!(!record.expired(i64::MAX));
        record.disconnected_at = Some(1_000);
        assert!(!record.expired(10_999));
        assert!(record.expired(11_000));
    }
}

/// A live connection as the cluster keeps it, so that if this node dies
/// another ends it as this node would have: the disconnected lifecycle
/// event, and the will.
#[derive(Clone, Debug)]
pub struct ConnectionRecord {
    pub client_id: String,
    /// This node's id for the connection (a later connection of the same
    /// client on this node has another).
    pub conn_id: u64,
    pub session_identifier: String,
    /// The certificate id the connection authenticated with.
    pub principal: String,
    /// The device's address, for `aws:SourceIp` when the will is authorized.
    pub source_ip: Option<std::net::IpAddr>,
    /// The will as it would be published (no expiry instant yet: its
    /// properties hold the interval), and its delay (MQTT 5 Will Delay,
    /// bounded by the session's expiry).
    pub will: Option<(crate::Message, std::time::Duration)>,
}

/// The connection `conn_id` of `client_id` ended here, its will sent or
/// discarded: the cluster forgets it.
pub(crate) fn connection_closed(shared: &crate::Shared, client_id: &str, conn_id: u64) {
    if let Some(link) = shared.peer_link.get() {
        link.connection_closed(client_id, conn_id);
    }
}

impl crate::Broker {
    /// Ends, on this node, a connection whose node is gone: the
    /// disconnected lifecycle event (CONNECTION_LOST), as its node would
    /// have published it.
    pub fn announce_lost_connection(&self, record: &ConnectionRecord) {
        if crate::events::publishable(&record.client_id) {
            let (topic, body) = crate::events::disconnected(
                &record.client_id,
                &record.session_identifier,
                &record.principal,
                false,
                "CONNECTION_LOST",
                0,
            );
            self.publish(crate::Message::new(topic, body, QoS::AtLeastOnce));
        }
    }

    /// Publishes the will of a connection whose node is gone, authorized as
    /// its node would have authorized it when sending it: the certificate
    /// still ACTIVE and the policies as they are now allowing it. Returns
    /// whether it went out.
    pub async fn send_lost_will(&self, record: &ConnectionRecord) -> bool {
        let Some((will, _)) = &record.will else {
            return false;
        };
        let registry = self.shared.registry.clone();
        let context = match registry.describe_certificate(&record.principal).await {
            Ok(certificate) => match roost_registry::pki::parse_pem(&certificate.pem) {
                Ok(parsed) => roost_registry::pki::policy_context(&parsed),
                Err(e) => return self.lost_will_refused(record, &e.to_string()),
            },
            Err(e) => return self.lost_will_refused(record, &e.to_string()),
        };
        let authz = crate::authz::ConnectionAuthz::new(
            registry,
            context,
            Some(&record.client_id),
            record.source_ip,
            self.shared.metrics.clone(),
        )
        .await;
        match authz {
            Ok(authz)
                if authz.publish(&will.topic, will.retain) == roost_policy::Decision::Allowed => {}
            Ok(_) => {
                return self.lost_will_refused(record, "the policies no longer allow publishing it")
            }
            Err(e) => return self.lost_will_refused(record, &e.to_string()),
        }
        let mut message = will.clone();
        message.expires_at = message.properties.message_expiry_interval.map(|secs| {
            std::time::Instant::now() + std::time::Duration::from_secs(u64::from(secs))
        });
        self.publish(message);
        true
    }

    fn lost_will_refused(&self, record: &ConnectionRecord, why: &str) -> bool {
        self.shared
            .metrics
            .wills_refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(client_id = %record.client_id, reason = %why, "will of a connection whose node is gone not sent");
        false
    }
}
