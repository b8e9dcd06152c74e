//! Routing: the subscription index, retained messages, and fan-out of one
//! accepted message to the queues of the sessions that subscribed to it.

use crate::journal::{Journal, Op};
use crate::metrics::Metrics;
use crate::session::{unix_ms, Outgoing, Session, SessionTable};
use crate::sync::{Locked, ReadWrite};
use crate::Limits;
use bytes::Bytes;
use roost_mqtt::{PublishProperties, QoS, SubscriptionOptions};
use roost_topic::{MatchMode, SubscriptionIndex};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

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
        }
    }

    pub(crate) fn expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// What routing one message did.
#[derive(Default)]
pub(crate) struct Routed {
    /// Subscribers that matched.
    pub matched: usize,
    /// The journal ticket its durable changes wait for, if any.
    pub ticket: Option<u64>,
    /// Sessions whose queue it left past the mark.
    pub full: Vec<Arc<Session>>,
}

pub(crate) struct Router {
    mode: MatchMode,
    index: RwLock<SubscriptionIndex<String, SubscriptionOptions>>,
    /// Retained messages by topic, with when they were last set (Unix ms).
    retained: Mutex<BTreeMap<String, (Arc<Message>, i64)>>,
}

impl Router {
    pub fn new(mode: MatchMode) -> Self {
        Self {
            mode,
            index: RwLock::new(SubscriptionIndex::new(mode)),
            retained: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn subscribe(&self, filter: &str, client_id: &str, options: SubscriptionOptions) -> bool {
        let mut index = self.index.writing();
        index
            .insert(filter, client_id.to_string(), options)
            .is_none()
    }

    pub fn unsubscribe(&self, filter: &str, client_id: &str) -> bool {
        let mut index = self.index.writing();
        index.remove(filter, &client_id.to_string()).is_some()
    }

    pub fn remove_subscriber(&self, client_id: &str) {
        let mut index = self.index.writing();
        index.remove_subscriber(&client_id.to_string());
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
        sessions: &SessionTable,
        limits: &Limits,
        metrics: &Metrics,
        journal: Option<&Journal>,
    ) -> Routed {
        // One delivery per subscriber, at the highest QoS of its matching
        // subscriptions (MQTT allows this, and it spares clients duplicates).
        let mut targets: HashMap<String, SubscriptionOptions> = HashMap::new();
        {
            let index = self.index.reading();
            index.for_each_match(&message.topic, |_filter, client_id, options| {
                if options.no_local && message.publisher.as_deref() == Some(client_id.as_str()) {
                    return;
                }
                targets
                    .entry(client_id.clone())
                    .and_modify(|o| {
                        if options.qos > o.qos {
                            o.qos = options.qos;
                        }
                        o.retain_as_published |= options.retain_as_published;
                    })
                    .or_insert(*options);
            });
        }
        let mut routed = Routed {
            matched: targets.len(),
            ..Routed::default()
        };
        for (client_id, options) in targets {
            let Some(session) = sessions.get(&client_id) else {
                continue;
            };
            let qos = message.qos.min(options.qos);
            let outgoing = Outgoing {
                message: message.clone(),
                qos,
                retain: options.retain_as_published && message.retain,
                dup: false,
                seq: 0,
            };
            let enqueued = session.enqueue(outgoing, limits, metrics, journal);
            routed.ticket = routed.ticket.max(enqueued.ticket);
            if enqueued.full {
                routed.full.push(session);
            }
        }
        routed
    }
}
