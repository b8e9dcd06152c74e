//! Routing: the subscription index, retained messages, and fan-out of one
//! accepted message to the queues of the sessions that subscribed to it.
//!
//! The index is the one record of every session's subscriptions: it is
//! keyed by the session itself, so a delivery reaches the subscriber's queue
//! straight from the match, with no lookup in the session table. A
//! subscription change takes the session's lock, then the index's: the
//! journal sees a session's subscription changes in the order they were
//! made, and in order with its messages.

use crate::journal::{Journal, Op};
use crate::message::{unix_ms, Message, Outgoing, Subscription};
use crate::metrics::Metrics;
use crate::session::Session;
use crate::sync::{Locked, ReadWrite};
use crate::Limits;
use roost_topic::{MatchMode, SubscriptionIndex};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

/// What routing one message did.
#[derive(Default)]
pub(crate) struct Routed {
    /// Subscribers that matched.
    pub matched: usize,
    /// The journal ticket its durable changes wait for, if any.
    pub ticket: Option<u64>,
    /// Sessions whose queue it left past the mark.
    pub full: Vec<Arc<Session>>,
    /// Handed to the other nodes of a cluster, whose subscribers this node
    /// cannot count.
    pub forwarded: bool,
    /// Being stored in the cluster's stream, not routed yet: the
    /// publisher's answer waits for this.
    pub stored: Option<Arc<crate::cluster::Confirmation>>,
}

/// A session as a key of the subscription index: the same session (by its
/// id, never reused while Roost runs) is the same subscriber.
#[derive(Clone)]
pub(crate) struct Subscriber(pub Arc<Session>);

impl PartialEq for Subscriber {
    fn eq(&self, other: &Self) -> bool {
        self.0.id == other.0.id
    }
}

impl Eq for Subscriber {}

impl std::hash::Hash for Subscriber {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.id.hash(state);
    }
}

impl PartialOrd for Subscriber {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Subscriber {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.id.cmp(&other.0.id)
    }
}

/// Which subscriptions a routed message goes to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach<'a> {
    /// Every matching one, a shared group through one member: one node.
    All,
    /// The plain ones: on a cluster node, whose shared subscriptions get
    /// their messages once across the cluster, through `Shared`.
    Plain,
    /// One member of this shared subscription (`$share/<group>/<filter>`).
    Shared(&'a str),
    /// The session with this id alone: a replay from the cluster's stream.
    Session(u64),
}

pub(crate) struct Router {
    mode: MatchMode,
    index: RwLock<SubscriptionIndex<Subscriber, Subscription>>,
    /// Marked whenever a shared subscription gains its first member here or
    /// loses its last: a cluster node's link then asks NATS for the new set.
    shared_changed: tokio::sync::watch::Sender<()>,
    /// Retained messages by topic, with when they were last set (Unix ms).
    retained: Mutex<BTreeMap<String, (Arc<Message>, i64)>>,
}

impl Router {
    pub fn new(mode: MatchMode) -> Self {
        Self {
            mode,
            index: RwLock::new(SubscriptionIndex::new(mode)),
            shared_changed: tokio::sync::watch::Sender::new(()),
            retained: Mutex::new(BTreeMap::new()),
        }
    }

    /// Adds or replaces `session`'s subscription to `filter`. `None` when
    /// the session already holds `max` others; else whether the filter is
    /// new, and the journal ticket when the change was journaled.
    pub fn subscribe(
        &self,
        session: &Arc<Session>,
        filter: &str,
        subscription: Subscription,
        max: usize,
        journal: Option<&Journal>,
    ) -> Option<(bool, Option<u64>)> {
        let state = session.lock();
        let mut index = self.index.writing();
        let subscriber = Subscriber(session.clone());
        if index.get(filter, &subscriber).is_none() && index.count_of(&subscriber) >= max {
            return None;
        }
        let groups = index.shared_filter_count();
        let is_new = index.insert(filter, subscriber, subscription).is_none();
        self.note_shared(groups, &index);
        let ticket = Session::journal_of(&state, journal).map(|journal| {
            journal.push(Op::Subscribed {
                session: session.id,
                filter: filter.to_string(),
                subscription,
            })
        });
        Some((is_new, ticket))
    }

    /// Removes `session`'s subscription to `filter`: whether it existed,
    /// and the journal ticket.
    pub fn unsubscribe(
        &self,
        session: &Arc<Session>,
        filter: &str,
        journal: Option<&Journal>,
    ) -> (bool, Option<u64>) {
        let state = session.lock();
        let mut index = self.index.writing();
        let groups = index.shared_filter_count();
        let existed = index.remove(filter, &Subscriber(session.clone())).is_some();
        self.note_shared(groups, &index);
        let ticket = match Session::journal_of(&state, journal) {
            Some(journal) if existed => Some(journal.push(Op::Unsubscribed {
                session: session.id,
                filter: filter.to_string(),
            })),
            _ => None,
        };
        (existed, ticket)
    }

    /// `session`'s subscriptions, in filter order.
    pub fn subscriptions_of(&self, session: &Arc<Session>) -> Vec<(String, Subscription)> {
        let index = self.index.reading();
        let subscriber = Subscriber(session.clone());
        let mut subscriptions: Vec<_> = index
            .filters_of(&subscriber)
            .filter_map(|filter| {
                let options = index.get(filter, &subscriber)?;
                Some((filter.to_string(), *options))
            })
            .collect();
        subscriptions.sort_by(|a, b| a.0.cmp(&b.0));
        subscriptions
    }

    /// The session ended: every subscription of its goes.
    pub fn remove_session(&self, session: &Arc<Session>) {
        let mut index = self.index.writing();
        let groups = index.shared_filter_count();
        index.remove_subscriber(&Subscriber(session.clone()));
        self.note_shared(groups, &index);
    }

    /// Marks the shared subscriptions changed if their number moved (one
    /// change adds at most one, and never adds and removes).
    fn note_shared(&self, before: usize, index: &SubscriptionIndex<Subscriber, Subscription>) {
        if index.shared_filter_count() != before {
            self.shared_changed.send_replace(());
        }
    }

    /// The text of every shared subscription with a member here.
    pub fn shared_filters(&self) -> Vec<String> {
        let index = self.index.reading();
        index.shared_filters().map(str::to_string).collect()
    }

    /// Changes when [`Self::shared_filters`] may have.
    pub fn watch_shared(&self) -> tokio::sync::watch::Receiver<()> {
        self.shared_changed.subscribe()
    }

    /// Stores (or, for an empty payload, deletes) the topic's retained
    /// message; journals the change when `journal` is given. Returns its
    /// journal ticket.
    pub fn retain(&self, message: &Arc<Message>, journal: Option<&Journal>) -> Option<u64> {
        let now = unix_ms(std::time::SystemTime::now());
        let mut retained = self.retained.locked();
        if message.payload.is_empty() {
            retained.remove(&message.topic);
        } else {
            retained.insert(message.topic.clone(), (message.clone(), now));
        }
        // Under the lock: the journal keeps the order of two publishers'
        // changes to one topic.
        journal.map(|journal| {
            journal.push(Op::Retained {
                message: message.clone(),
                set_at: now,
            })
        })
    }

    /// Puts back a retained message read from the gateway state.
    pub fn restore_retained(&self, message: Arc<Message>, set_at: i64) {
        let mut retained = self.retained.locked();
        retained.insert(message.topic.clone(), (message, set_at));
    }

    /// Retained messages a new subscription to `filter` receives. AWS sends
    /// them only when the filter is exactly the topic; MQTT for every match.
    pub fn retained_for(&self, filter: &str) -> Vec<Arc<Message>> {
        let now = Instant::now();
        let mut retained = self.retained.locked();
        retained.retain(|_, (m, _)| !m.expired(now));
        match self.mode {
            MatchMode::Aws => retained
                .get(filter)
                .map(|(m, _)| m.clone())
                .into_iter()
                .collect(),
            MatchMode::Mqtt => retained
                .iter()
                .filter(|(topic, _)| roost_topic::matches(filter, topic, MatchMode::Mqtt))
                .map(|(_, (m, _))| m.clone())
                .collect(),
        }
    }

    /// The retained message on `topic` and when it was set (Unix ms).
    pub fn retained_message(&self, topic: &str) -> Option<(Arc<Message>, i64)> {
        let now = Instant::now();
        let retained = self.retained.locked();
        retained
            .get(topic)
            .filter(|(m, _)| !m.expired(now))
            .cloned()
    }

    /// Every unexpired retained message, in topic order.
    pub fn retained_topics(&self) -> Vec<(Arc<Message>, i64)> {
        let now = Instant::now();
        let retained = self.retained.locked();
        retained
            .values()
            .filter(|(m, _)| !m.expired(now))
            .cloned()
            .collect()
    }

    /// Offers `message` to every matching session; returns how many
    /// subscribers matched (whether or not their session queued it: an
    /// offline QoS 0 subscription still matches, for PUBACK's 0x10), the
    /// highest journal ticket of the durable sessions that queued it, and
    /// the sessions now past their queue's mark (the publisher should wait
    /// for room in them).
    pub fn route(
        &self,
        message: &Arc<Message>,
        reach: Reach<'_>,
        limits: &Limits,
        metrics: &Metrics,
        journal: Option<&Journal>,
    ) -> Routed {
        // One delivery per subscriber, at the highest QoS of its matching
        // subscriptions (MQTT allows this, and it spares clients duplicates).
        // The identifiers of every matching subscription go with the copy.
        // Matches are gathered, then grouped by session: no map per message,
        // and subscribers are served in a stable order (by session id).
        let mut matches: Vec<(Arc<Session>, Subscription)> = Vec::new();
        {
            let index = self.index.reading();
            let mut found =
                |_filter: &str, Subscriber(session): &Subscriber, subscription: &Subscription| {
                    let no_local = subscription.options.no_local
                        && message.publisher.as_deref() == Some(&*session.client_id);
                    if !no_local {
                        matches.push((session.clone(), *subscription));
                    }
                };
            match reach {
                Reach::All => index.for_each_match(&message.topic, found),
                Reach::Plain => index.for_each_plain_match(&message.topic, found),
                Reach::Session(id) => index.for_each_plain_match(
                    &message.topic,
                    |filter, subscriber: &Subscriber, subscription| {
                        if subscriber.0.id == id {
                            found(filter, subscriber, subscription);
                        }
                    },
                ),
                Reach::Shared(filter) => {
                    // NATS matched the topic; the check keeps a stray message
                    // from a member whose filter it does not match.
                    if roost_topic::matches(filter, &message.topic, self.mode) {
                        index.pick_shared(filter, found);
                    }
                }
            }
        }
        matches.sort_by_key(|(session, _)| session.id);
        let mut routed = Routed::default();
        for group in matches.chunk_by(|a, b| a.0.id == b.0.id) {
            routed.matched += 1;
            let session = &group[0].0;
            let mut options = group[0].1.options;
            let mut subscription_ids = Vec::new();
            for (_, subscription) in group {
                options.qos = options.qos.max(subscription.options.qos);
                options.retain_as_published |= subscription.options.retain_as_published;
                subscription_ids.extend(subscription.identifier);
            }
            subscription_ids.sort_unstable();
            let outgoing = Outgoing {
                message: message.clone(),
                qos: message.qos.min(options.qos),
                retain: options.retain_as_published && message.retain,
                subscription_ids,
                dup: false,
                seq: 0,
            };
            let enqueued = session.enqueue(outgoing, limits, metrics, journal);
            routed.ticket = routed.ticket.max(enqueued.ticket);
            if enqueued.full {
                routed.full.push(session.clone());
            }
        }
        routed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SessionTable;
    use crate::{Limits, Profile};
    use roost_mqtt::{QoS, SubscriptionOptions};
    use std::time::Duration;

    fn subscription(qos: QoS, identifier: Option<u32>) -> Subscription {
        Subscription {
            options: SubscriptionOptions::qos(qos),
            identifier,
        }
    }

    fn connected(sessions: &SessionTable, client_id: &str) -> Arc<Session> {
        let (session, _) = sessions.open(client_id, true);
        session.attach(1, Duration::ZERO, None, Vec::new);
        session
    }

    fn route(router: &Router, topic: &str, qos: QoS) -> Routed {
        let limits = Limits::for_profile(Profile::Full);
        let message = Arc::new(Message::new(topic, "x", qos));
        router.route(&message, Reach::All, &limits, &Metrics::default(), None)
    }

    #[test]
    fn one_copy_per_session_at_the_highest_qos_with_every_identifier() {
        let (router, sessions) = (Router::new(MatchMode::Mqtt), SessionTable::default());
        let sub = connected(&sessions, "sub");
        let other = connected(&sessions, "other");
        router.subscribe(
            &sub,
            "a/#",
            subscription(QoS::AtMostOnce, Some(9)),
            10,
            None,
        );
        router.subscribe(
            &sub,
            "a/+",
            subscription(QoS::AtLeastOnce, Some(2)),
            10,
            None,
        );
        router.subscribe(&sub, "a/b", subscription(QoS::AtLeastOnce, None), 10, None);
        router.subscribe(&other, "a/b", subscription(QoS::AtMostOnce, None), 10, None);

        assert_eq!(route(&router, "a/b", QoS::AtLeastOnce).matched, 2);
        let copy = sub.lock().queue.pop_front().unwrap();
        assert_eq!(
            (copy.qos, copy.subscription_ids),
            (QoS::AtLeastOnce, vec![2, 9])
        );
        assert!(
            sub.lock().queue.is_empty(),
            "one copy, not one per subscription"
        );
        let copy = other.lock().queue.pop_front().unwrap();
        assert_eq!((copy.qos, copy.subscription_ids), (QoS::AtMostOnce, vec![]));
    }

    #[test]
    fn the_index_is_the_one_record_of_a_session_s_subscriptions() {
        let (router, sessions) = (Router::new(MatchMode::Mqtt), SessionTable::default());
        let sub = connected(&sessions, "sub");
        let first = router.subscribe(&sub, "x", subscription(QoS::AtLeastOnce, Some(1)), 2, None);
        assert_eq!(first, Some((true, None)));
        // Replacing a subscription is not a new one, and not over the limit.
        let again = router.subscribe(&sub, "x", subscription(QoS::AtMostOnce, Some(3)), 1, None);
        assert_eq!(again, Some((false, None)));
        router.subscribe(&sub, "y", subscription(QoS::AtLeastOnce, None), 2, None);
        assert_eq!(
            router.subscribe(&sub, "z", subscription(QoS::AtLeastOnce, None), 2, None),
            None
        );
        assert_eq!(
            router.subscriptions_of(&sub),
            [
                ("x".to_string(), subscription(QoS::AtMostOnce, Some(3))),
                ("y".to_string(), subscription(QoS::AtLeastOnce, None)),
            ]
        );
        assert_eq!(router.unsubscribe(&sub, "y", None), (true, None));
        assert_eq!(router.unsubscribe(&sub, "y", None), (false, None));

        // A new session for the same client id is another subscriber: the
        // old one's end takes only its own subscriptions.
        let (newer, _) = sessions.open("sub", true);
        router.subscribe(&newer, "n", subscription(QoS::AtLeastOnce, None), 2, None);
        router.remove_session(&sub);
        assert!(router.subscriptions_of(&sub).is_empty());
        assert_eq!(router.subscriptions_of(&newer).len(), 1);
        assert_eq!(route(&router, "x", QoS::AtLeastOnce).matched, 0);
        assert_eq!(route(&router, "n", QoS::AtLeastOnce).matched, 1);
    }

    #[test]
    fn no_local_skips_the_publisher_s_own_session() {
        let (router, sessions) = (Router::new(MatchMode::Mqtt), SessionTable::default());
        let sub = connected(&sessions, "me");
        let mut own = subscription(QoS::AtLeastOnce, None);
        own.options.no_local = true;
        router.subscribe(&sub, "t", own, 10, None);
        let limits = Limits::for_profile(Profile::Full);
        let mut message = Message::new("t", "x", QoS::AtLeastOnce);
        message.publisher = Some("me".into());
        let routed = router.route(
            &Arc::new(message),
            Reach::All,
            &limits,
            &Metrics::default(),
            None,
        );
        assert_eq!(routed.matched, 0);
        assert!(sub.lock().queue.is_empty());
    }
}
