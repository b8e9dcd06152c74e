//! QoS 1/2 messages and persistent sessions kept in JetStream
//! (`docs/cluster.md`, "Messages that survive a node").
//!
//! - The stream `<prefix>-messages` holds every QoS 1/2 message accepted by
//!   any node, on its stored subject (`PREFIX.q.…`). A node publishes one
//!   with a message id of its own (a retry after a lost acknowledgement is
//!   stored once) and confirms it to the broker, which answers the
//!   publisher, only once JetStream acknowledged it.
//! - Every node reads the stream from where it joined, in order (an
//!   ordered consumer), and routes each message to its own subscribers with
//!   its stream sequence; the node that accepted it too.
//! - The KV bucket `<prefix>-sessions` holds one record per persistent
//!   session: its owner node, an epoch, its subscriptions, expiry, and its
//!   place in the stream (everything before it was delivered and
//!   acknowledged, or did not concern it). The owner rewrites it when it
//!   changes, always with compare-and-set on the revision it last wrote: a
//!   write that fails means another node took the session, and it ends
//!   here. A node a client reconnects to claims the record the same way and
//!   replays the stream from its place up to where its own reading was then;
//!   what came after reaches the session live.

use crate::LinkCounters;
use bytes::Bytes;
use futures_util::StreamExt;
use roost_broker::cluster::{RecordedSubscription, SessionRecord};
use roost_broker::{Broker, Message};
use roost_cluster::SubjectSpace;
use roost_mqtt::{QoS, RetainHandling, SubscriptionOptions};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, kv, stream};

/// How long a message may take to be stored, retries included, before its
/// publisher is told it was not.
pub(crate) const STORE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the owner looks for changed sessions to write.
const SESSION_SYNC: Duration = Duration::from_millis(100);
/// A session whose only change is its place in the stream is written at
/// most this often.
const POSITION_SYNC: Duration = Duration::from_secs(1);
/// How long a claimed record is kept for a session not yet rebuilt.
const CLAIM_GRACE: Duration = Duration::from_secs(5);
/// How long JetStream may stay silent before the node says it is not
/// ready.
const ANSWER_LIMIT: Duration = Duration::from_secs(5);
/// How long JetStream remembers a message id.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// Messages fetched per request while replaying.
const REPLAY_BATCH: usize = 1024;
/// The nodes' shared consumer of the stream that runs the rules.
const RULES_CONSUMER: &str = "rules";
/// How long a node may take over a message's rules before another node
/// is handed the message.
const RULES_ACK_WAIT: Duration = Duration::from_secs(15);
/// Messages whose rules one node runs at once.
const RULES_IN_FLIGHT: usize = 256;
/// Headers of a stored message: who published it (escaped as keys are).
const PUBLISHER: &str = "Roost-Publisher";
const PRINCIPAL: &str = "Roost-Principal";

/// A QoS 1/2 message as it is sent to the stream.
pub(crate) struct Outbound {
    subject: String,
    body: Bytes,
    id: String,
    who: async_nats::HeaderMap,
}

/// The durable half of a node's link.
pub(crate) struct Stored {
    pub js: jetstream::Context,
    pub stream_name: String,
    pub sessions: kv::Store,
    /// Retained messages, one key per topic (crate::retained).
    pub retained: kv::Store,
    pub space: SubjectSpace,
    pub node_id: String,
    /// The highest stream sequence this node has routed (its reading of the
    /// stream is in order).
    pub received_through: AtomicU64,
    /// Message ids: the node, then a counter.
    next_id: AtomicU64,
    /// This run of the node (a fresh id at each start), which its
    /// heartbeat carries and its connection records name (crate::lost).
    pub run: String,
    /// When JetStream last stored this node's heartbeat (for `/readyz`),
    /// and since when it has without a gap.
    answered: Mutex<Answered>,
    owned: Mutex<HashMap<String, Owned>>,
    pub counters: Arc<LinkCounters>,
}

/// A session record this node owns: the revision it last wrote, and what.
struct Owned {
    revision: u64,
    epoch: u64,
    written: Option<SessionDoc>,
    written_at: Instant,
    /// Set by a claim: the place to replay from, until the replay is done.
    replay_from: Option<u64>,
    claimed_at: Instant,
}

/// How a node joins JetStream.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Replicas for the stream and the bucket when Roost creates them;
    /// `None`: 3 when the NATS server is part of a cluster, else 1.
    pub replicas: Option<usize>,
    /// How long the stream keeps a message: a session away for longer
    /// misses what is older.
    pub max_age: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            replicas: None,
            max_age: Duration::from_secs(24 * 3600),
        }
    }
}

/// A session record as stored in the bucket (JSON).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct SessionDoc {
    node: String,
    epoch: u64,
    expiry_secs: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    disconnected_at: Option<i64>,
    /// The stream sequence to replay from.
    position: u64,
    subscriptions: Vec<SubscriptionDoc>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct SubscriptionDoc {
    filter: String,
    qos: u8,
    #[serde(default)]
    no_local: bool,
    #[serde(default)]
    retain_as_published: bool,
    #[serde(default)]
    retain_handling: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    identifier: Option<u32>,
}

impl SessionDoc {
    fn of(record: &SessionRecord, node: &str, epoch: u64, position: u64) -> Self {
        Self {
            node: node.to_string(),
            epoch,
            expiry_secs: record.expiry_secs,
            disconnected_at: record.disconnected_at,
            position,
            subscriptions: record
                .subscriptions
                .iter()
                .map(|s| SubscriptionDoc {
                    filter: s.filter.clone(),
                    qos: s.options.qos as u8,
                    no_local: s.options.no_local,
                    retain_as_published: s.options.retain_as_published,
                    retain_handling: s.options.retain_handling as u8,
                    identifier: s.identifier,
                })
                .collect(),
        }
    }

    fn record(&self, client_id: &str) -> SessionRecord {
        SessionRecord {
            client_id: client_id.to_string(),
            expiry_secs: self.expiry_secs,
            disconnected_at: self.disconnected_at,
            subscriptions: self
                .subscriptions
                .iter()
                .map(|s| RecordedSubscription {
                    filter: s.filter.clone(),
                    options: SubscriptionOptions {
                        qos: match s.qos {
                            0 => QoS::AtMostOnce,
                            1 => QoS::AtLeastOnce,
                            _ => QoS::ExactlyOnce,
                        },
                        no_local: s.no_local,
                        retain_as_published: s.retain_as_published,
                        retain_handling: match s.retain_handling {
                            0 => RetainHandling::SendAtSubscribe,
                            1 => RetainHandling::SendIfNewSubscription,
                            _ => RetainHandling::DoNotSend,
                        },
                    },
                    identifier: s.identifier,
                })
                .collect(),
            oldest_held: Some(self.position),
        }
    }

    /// The same record but for its place in the stream.
    fn same_but_position(&self, other: &SessionDoc) -> bool {
        SessionDoc {
            position: other.position,
            ..self.clone()
        } == *other
    }
}

/// Why JetStream could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("NATS has no JetStream (start nats-server with -js and a store directory): {0}")]
    NoJetStream(String),
    #[error("the stream {name}: {why}")]
    Stream { name: String, why: String },
    #[error("the KV bucket {name}: {why}")]
    Bucket { name: String, why: String },
}

impl Stored {
    /// Finds or creates the stream and the bucket.
    pub async fn open(
        client: &async_nats::Client,
        space: &SubjectSpace,
        node_id: &str,
        config: &StoreConfig,
        counters: Arc<LinkCounters>,
    ) -> Result<Self, StoreError> {
        let js = jetstream::new(client.clone());
        js.query_account()
            .await
            .map_err(|e| StoreError::NoJetStream(e.to_string()))?;
        let replicas = config.replicas.unwrap_or_else(|| {
            // A server that names others is part of a cluster.
            match client.server_info().connect_urls.len() {
                0 | 1 => 1,
                _ => 3,
            }
        });
        let stored = space.stored();
        let stream_name = space.resource_name("messages");
        let mut messages = js
            .get_or_create_stream(stream::Config {
                name: stream_name.clone(),
                subjects: vec![format!("{}.>", stored.prefix())],
                storage: stream::StorageType::File,
                num_replicas: replicas,
                duplicate_window: DUPLICATE_WINDOW,
                max_age: config.max_age,
                ..Default::default()
            })
            .await
            .map_err(|e| StoreError::Stream {
                name: stream_name.clone(),
                why: e.to_string(),
            })?;
        // The node reads from here on; a session claimed before its first
        // read replays up to here.
        let last = messages
            .info()
            .await
            .map_err(|e| StoreError::Stream {
                name: stream_name.clone(),
                why: e.to_string(),
            })?
            .state
            .last_sequence;
        let bucket = space.resource_name("sessions");
        let sessions = self::bucket(&js, &bucket, replicas).await?;
        let retained = crate::retained::open(&js, space, replicas).await?;
        tracing::info!(stream = %stream_name, %bucket, replicas, "JetStream ready");
        Ok(Self {
            js,
            stream_name,
            sessions,
            retained,
            space: stored,
            node_id: node_id.to_string(),
            received_through: AtomicU64::new(last),
            next_id: AtomicU64::new(0),
            run: uuid::Uuid::new_v4().simple().to_string(),
            answered: Mutex::new(Answered {
                last: Instant::now(),
                since: None,
            }),
            owned: Mutex::new(HashMap::new()),
            counters,
        })
    }

    fn owned(&self) -> std::sync::MutexGuard<'_, HashMap<String, Owned>> {
        self.owned.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What a QoS 1/2 `message` is sent to the stream as: its stored
    /// subject, its body, a message id of this node's, and who published
    /// it in headers (escaped as keys are), for the rules and No Local on
    /// the other nodes. `None` when it expired while it waited.
    pub fn outbound(&self, message: &Message, started: i64) -> Result<Option<Outbound>, String> {
        let subject = self
            .space
            .topic_subject(&message.topic)
            .map_err(|e| e.to_string())?;
        let Some(body) = crate::encode(message, Instant::now()).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let mut who = async_nats::HeaderMap::new();
        for (name, value) in [
            (PUBLISHER, &message.publisher),
            (PRINCIPAL, &message.principal),
        ] {
            if let Some(value) = value {
                who.insert(name, roost_cluster::key(value).as_str());
            }
        }
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        Ok(Some(Outbound {
            subject,
            body,
            id: format!("{}-{started}-{n}", self.node_id),
            who,
        }))
    }

    /// Stores one message: sends it again with its id until JetStream
    /// acknowledges it or [`STORE_TIMEOUT`] passes.
    pub async fn store(
        &self,
        out: Outbound,
        first: Result<jetstream::context::PublishAckFuture, String>,
    ) -> bool {
        let deadline = Instant::now() + STORE_TIMEOUT;
        let mut attempt = first;
        let mut pause = Duration::from_millis(50);
        loop {
            if let Ok(ack) = attempt {
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, ack).await {
                    Ok(Ok(_)) => return true,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "JetStream did not acknowledge; trying again")
                    }
                    Err(_) => {}
                }
            }
            if Instant::now() + pause >= deadline {
                return false;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
            attempt = self.send(&out).await;
        }
    }

    pub async fn send(
        &self,
        out: &Outbound,
    ) -> Result<jetstream::context::PublishAckFuture, String> {
        self.js
            .send_publish(
                out.subject.clone(),
                jetstream::message::PublishMessage::build()
                    .payload(out.body.clone())
                    .headers(out.who.clone())
                    .message_id(out.id.clone()),
            )
            .await
            .map_err(|e| e.to_string())
    }

    /// Runs the rules of every stored message on this node or another:
    /// the nodes share one durable consumer of the stream, which hands each
    /// message to one of them, and a node acknowledges a message once its
    /// rules are done; one that dies before has its messages handed to
    /// another after [`RULES_ACK_WAIT`].
    pub async fn run_rules(self: Arc<Self>, broker: Broker) -> Result<(), String> {
        let stream = self.stream().await?;
        let consumer = stream
            .get_or_create_consumer(
                RULES_CONSUMER,
                consumer::pull::Config {
                    durable_name: Some(RULES_CONSUMER.into()),
                    filter_subject: format!("{}.>", self.space.prefix()),
                    deliver_policy: consumer::DeliverPolicy::New,
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: RULES_ACK_WAIT,
                    max_ack_pending: RULES_IN_FLIGHT as i64 * 4,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        let mut messages = consumer
            .stream()
            .heartbeat(Duration::from_secs(1))
            .max_messages_per_batch(RULES_IN_FLIGHT)
            .messages()
            .await
            .map_err(|e| e.to_string())?;
        let running = Arc::new(tokio::sync::Semaphore::new(RULES_IN_FLIGHT));
        while let Some(next) = messages.next().await {
            let message = next.map_err(|e| e.to_string())?;
            let Ok(permit) = running.clone().acquire_owned().await else {
                break;
            };
            let (stored, broker) = (self.clone(), broker.clone());
            tokio::spawn(async move {
                if let Some((_, Some(decoded))) = stored.decode(&message) {
                    broker.run_rules(decoded).await;
                }
                if message.ack().await.is_err() {
                    stored
                        .counters
                        .rules_ack_failures
                        .fetch_add(1, Ordering::Relaxed);
                }
                drop(permit);
            });
        }
        Err("the rules' reader ended".into())
    }

    /// Reads the stream in order, routing each message to this node's
    /// subscribers, from after the last message routed (at first: from
    /// where the stream ended when the node joined). Returns when the reading broke (a gap, a missed heartbeat,
    /// the consumer gone with its server): the caller starts it again.
    ///
    /// (async-nats's ordered consumer does the same but notices a lost
    /// server only after two missed 15 s heartbeats; this one, after 2 s.)
    pub async fn read(self: Arc<Self>, broker: Broker) -> Result<(), String> {
        let stream = self.stream().await?;
        let from = self.received_through.load(Ordering::Relaxed) + 1;
        let consumer = stream
            .create_consumer(self.reader(from))
            .await
            .map_err(|e| e.to_string())?;
        let mut messages = consumer
            .stream()
            .heartbeat(Duration::from_secs(1))
            .max_messages_per_batch(500)
            .messages()
            .await
            .map_err(|e| e.to_string())?;
        let mut delivered = 0;
        while let Some(next) = messages.next().await {
            let message = next.map_err(|e| e.to_string())?;
            let Ok(info) = message.info() else { continue };
            if info.consumer_sequence != delivered + 1 {
                return Err("a gap in the stream's reading".into());
            }
            delivered = info.consumer_sequence;
            let Some((seq, decoded)) = self.decode(&message) else {
                continue;
            };
            if let Some(decoded) = decoded {
                self.counters.received.fetch_add(1, Ordering::Relaxed);
                broker.deliver_from_peer(decoded);
            }
            self.received_through.store(seq, Ordering::Relaxed);
        }
        Err("the stream's reader ended".into())
    }

    /// Writes this node's heartbeat to the session bucket every second
    /// until `shutdown` (key `node.<node id escaped>`, which no client id's
    /// key can be: those have no `.`): a node whose NATS lost its quorum is
    /// still connected, but nothing it writes is stored any more.
    pub async fn watch_jetstream(
        self: Arc<Self>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let key = format!("node.{}", roost_cluster::key(&self.node_id));
        every(Duration::from_secs(1), &mut shutdown, || async {
            let beat = Bytes::from(self.run.clone());
            let written =
                tokio::time::timeout(Duration::from_secs(2), self.sessions.put(&key, beat));
            if let Ok(Ok(_)) = written.await {
                self.answers().stored(Instant::now());
            }
        })
        .await;
    }

    fn answers(&self) -> std::sync::MutexGuard<'_, Answered> {
        self.answered.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ok while JetStream stored a heartbeat in the last [`ANSWER_LIMIT`].
    pub fn answering(&self) -> Result<(), String> {
        match self.answers().last.elapsed() {
            quiet if quiet <= ANSWER_LIMIT => Ok(()),
            quiet => Err(format!(
                "JetStream has not answered for {} s (has the NATS cluster lost its quorum?)",
                quiet.as_secs()
            )),
        }
    }

    /// How long JetStream has stored every heartbeat (none missed for
    /// [`ANSWER_LIMIT`]); `None` while it does not.
    pub fn answering_for(&self) -> Option<Duration> {
        self.answers().answering_for(Instant::now())
    }

    async fn stream(&self) -> Result<stream::Stream, String> {
        self.js
            .get_stream(&self.stream_name)
            .await
            .map_err(|e| e.to_string())
    }

    /// A reader of the stream from `from` on, in order, that acknowledges
    /// nothing and disappears 30 s after its node stopped asking.
    fn reader(&self, from: u64) -> consumer::pull::Config {
        consumer::pull::Config {
            filter_subject: format!("{}.>", self.space.prefix()),
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: from,
            },
            ack_policy: consumer::AckPolicy::None,
            inactive_threshold: Duration::from_secs(30),
            memory_storage: true,
            num_replicas: 1,
            ..Default::default()
        }
    }

    /// A stored message's sequence and the message (`None` when it expired
    /// or is not one of this space's, counted).
    fn decode(&self, message: &jetstream::Message) -> Option<(u64, Option<Message>)> {
        let info = message.info().ok()?;
        let seq = info.stream_sequence;
        // Its expiry counts from when it was stored, not from now.
        let age = (time::OffsetDateTime::now_utc() - info.published)
            .try_into()
            .unwrap_or(Duration::ZERO);
        let now = Instant::now();
        let decoded = match crate::decode(&self.space, &message.subject, &message.payload, now) {
            Ok(mut decoded) => {
                decoded.stored_seq = seq;
                let who = |name| {
                    let header = message.headers.as_ref()?.get(name)?;
                    roost_cluster::unkey(header.as_str()).ok()
                };
                decoded.publisher = who(PUBLISHER);
                decoded.principal = who(PRINCIPAL);
                match decoded.expires_at {
                    Some(at) if at.checked_sub(age).is_none_or(|at| at <= now) => None,
                    Some(at) => {
                        decoded.expires_at = at.checked_sub(age);
                        Some(decoded)
                    }
                    None => Some(decoded),
                }
            }
            Err(crate::EnvelopeError::Expired) => None,
            Err(error) => {
                self.counters
                    .received_malformed
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "ignored a message from the cluster's stream");
                None
            }
        };
        Some((seq, decoded))
    }

    /// Makes `client_id`'s record this node's (see
    /// `PeerLink::claim_session`): `Some` when a record another node (or an
    /// earlier run of this one) left is to be rebuilt here.
    pub async fn claim(
        &self,
        client_id: &str,
        clean_start: bool,
        here: bool,
    ) -> Result<Option<SessionRecord>, String> {
        let key = roost_cluster::key(client_id);
        if clean_start {
            // Read first: most clean starts have no record to remove, and a
            // purge would write a marker for each.
            self.owned().remove(client_id);
            let entry = self.sessions.entry(&key).await.map_err(|e| e.to_string())?;
            return match entry.filter(|e| e.operation == kv::Operation::Put) {
                // Whoever holds it, a clean start discards it.
                Some(_) => self
                    .sessions
                    .purge(&key)
                    .await
                    .map(|_| None)
                    .map_err(|e| e.to_string()),
                None => Ok(None),
            };
        }
        for _ in 0..5 {
            let entry = self.sessions.entry(&key).await.map_err(|e| e.to_string())?;
            let Some(entry) = entry.filter(|e| e.operation == kv::Operation::Put) else {
                self.owned().remove(client_id);
                return Ok(None);
            };
            let doc: SessionDoc = match serde_json::from_slice(&entry.value) {
                Ok(doc) => doc,
                Err(e) => {
                    tracing::warn!(client_id, error = %e, "ignored an unreadable session record");
                    return self.drop_record(client_id, &key, entry.revision).await;
                }
            };
            let ours = self
                .owned()
                .get(client_id)
                .is_some_and(|o| o.revision == entry.revision);
            if ours && here {
                return Ok(None);
            }
            let record = doc.record(client_id);
            if record.expired(unix_now_ms()) {
                return self.drop_record(client_id, &key, entry.revision).await;
            }
            let claimed = SessionDoc {
                node: self.node_id.clone(),
                epoch: doc.epoch + 1,
                ..doc.clone()
            };
            let body = Bytes::from(serde_json::to_vec(&claimed).map_err(|e| e.to_string())?);
            match self.sessions.update(&key, body, entry.revision).await {
                Ok(revision) => {
                    let now = Instant::now();
                    self.owned().insert(
                        client_id.to_string(),
                        Owned {
                            revision,
                            epoch: claimed.epoch,
                            written: Some(claimed),
                            written_at: now,
                            replay_from: Some(doc.position),
                            claimed_at: now,
                        },
                    );
                    self.counters
                        .sessions_claimed
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(client_id, from = %doc.node, epoch = doc.epoch + 1, position = doc.position, "took over a persistent session");
                    return Ok(Some(record));
                }
                // Another node wrote it in between: read it again.
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
                Err(e) => return Err(e.to_string()),
            }
        }
        Err("the session's record kept changing".into())
    }

    async fn drop_record(
        &self,
        client_id: &str,
        key: &str,
        revision: u64,
    ) -> Result<Option<SessionRecord>, String> {
        self.owned().remove(client_id);
        match self
            .sessions
            .purge_expect_revision(key, Some(revision))
            .await
        {
            Ok(()) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    /// This node ended `client_id`'s session: its record goes, unless
    /// another node wrote it since.
    pub async fn forget(&self, client_id: &str) {
        let Some(owned) = self.owned().remove(client_id) else {
            return;
        };
        let key = roost_cluster::key(client_id);
        if let Err(e) = self
            .sessions
            .purge_expect_revision(&key, Some(owned.revision))
            .await
        {
            tracing::debug!(client_id, error = %e, "session record not removed");
        }
    }

    /// Replays to `client_id`'s rebuilt session what the stream holds from
    /// its claimed place up to where this node's reading was.
    pub async fn replay(&self, broker: &Broker, client_id: &str) {
        let Some(from) = self.owned().get(client_id).and_then(|o| o.replay_from) else {
            return;
        };
        let until = self.received_through.load(Ordering::Relaxed);
        let mut delivered = 0u64;
        let outcome = if from > until {
            Ok(())
        } else {
            self.replay_range(broker, client_id, from, until, &mut delivered)
                .await
        };
        match outcome {
            Ok(()) => {
                if let Some(owned) = self.owned().get_mut(client_id) {
                    owned.replay_from = None;
                }
                self.counters
                    .replayed
                    .fetch_add(delivered, Ordering::Relaxed);
                tracing::info!(
                    client_id,
                    from,
                    until,
                    delivered,
                    "replayed a taken-over session"
                );
            }
            Err(e) => {
                // The record keeps its place: the next node replays it.
                self.counters
                    .replay_failures
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(client_id, error = %e, "could not replay a taken-over session");
            }
        }
    }

    async fn replay_range(
        &self,
        broker: &Broker,
        client_id: &str,
        from: u64,
        until: u64,
        delivered: &mut u64,
    ) -> Result<(), String> {
        let stream = self.stream().await?;
        let consumer = stream
            .create_consumer(self.reader(from))
            .await
            .map_err(|e| e.to_string())?;
        let name = consumer.cached_info().name.clone();
        let outcome = async {
            loop {
                let mut batch = consumer
                    .fetch()
                    .max_messages(REPLAY_BATCH)
                    .messages()
                    .await
                    .map_err(|e| e.to_string())?;
                let mut got = 0;
                while let Some(message) = batch.next().await {
                    let message = message.map_err(|e| e.to_string())?;
                    got += 1;
                    let Some((seq, decoded)) = self.decode(&message) else {
                        continue;
                    };
                    if seq > until {
                        return Ok(());
                    }
                    if let Some(decoded) = decoded {
                        *delivered += broker.deliver_to_session(client_id, decoded) as u64;
                    }
                    if seq == until {
                        return Ok(());
                    }
                }
                if got == 0 {
                    return Ok(());
                }
            }
        }
        .await;
        let _ = stream.delete_consumer(&name).await;
        outcome
    }

    /// Writes the changed records of this node's persistent sessions, and
    /// ends here the ones another node took.
    pub async fn sync_sessions(&self, broker: &Broker) {
        let records = broker.persistent_sessions();
        let through = self.received_through.load(Ordering::Relaxed);
        let now = Instant::now();
        let here: std::collections::HashSet<&str> =
            records.iter().map(|r| r.client_id.as_str()).collect();
        // Records of sessions that left this node without ending (another
        // node took them) are forgotten, not removed.
        self.owned().retain(|client_id, owned| {
            here.contains(client_id.as_str()) || now.duration_since(owned.claimed_at) < CLAIM_GRACE
        });
        for record in &records {
            let (epoch, known, floor) = match self.owned().get(&record.client_id) {
                Some(o) => (
                    o.epoch,
                    Some((o.revision, o.written.clone(), o.written_at)),
                    o.replay_from,
                ),
                None => (1, None, None),
            };
            let position = [record.oldest_held, floor, Some(through + 1)]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(through + 1);
            let doc = SessionDoc::of(record, &self.node_id, epoch, position);
            if let Some((_, Some(written), at)) = &known {
                if *written == doc
                    || (written.same_but_position(&doc) && now.duration_since(*at) < POSITION_SYNC)
                {
                    continue;
                }
            }
            let Ok(body) = serde_json::to_vec(&doc) else {
                continue;
            };
            let key = roost_cluster::key(&record.client_id);
            let written = match known {
                Some((revision, _, _)) => self
                    .sessions
                    .update(&key, body.into(), revision)
                    .await
                    .map_err(|e| e.kind() == kv::UpdateErrorKind::WrongLastRevision),
                None => self
                    .sessions
                    .create(&key, body.into())
                    .await
                    .map_err(|e| e.kind() == kv::CreateErrorKind::AlreadyExists),
            };
            match written {
                Ok(revision) => {
                    self.counters.session_writes.fetch_add(1, Ordering::Relaxed);
                    let mut owned = self.owned();
                    let entry = owned.entry(record.client_id.clone()).or_insert(Owned {
                        revision,
                        epoch,
                        written: None,
                        written_at: now,
                        replay_from: None,
                        claimed_at: now,
                    });
                    entry.revision = revision;
                    entry.written = Some(doc);
                    entry.written_at = now;
                }
                Err(true) => {
                    // Someone else holds the record: the session is theirs.
                    self.owned().remove(&record.client_id);
                    self.counters.sessions_lost.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(client_id = %record.client_id, "another node took this persistent session; ending it here");
                    broker.session_moved_away(&record.client_id);
                }
                Err(false) => {
                    self.counters
                        .session_write_failures
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Runs [`Stored::sync_sessions`] every [`SESSION_SYNC`].
    pub async fn keep_sessions(
        self: Arc<Self>,
        broker: Broker,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        every(SESSION_SYNC, &mut shutdown, || self.sync_sessions(&broker)).await;
        // The last state, so that the next node replays little.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.sync_sessions(&broker)).await;
    }
}

/// When the node's heartbeats were stored.
struct Answered {
    last: Instant,
    /// The first of the heartbeats stored since the last gap.
    since: Option<Instant>,
}

impl Answered {
    fn stored(&mut self, now: Instant) {
        if now.duration_since(self.last) > ANSWER_LIMIT {
            self.since = None;
        }
        self.since.get_or_insert(now);
        self.last = now;
    }

    fn answering_for(&self, now: Instant) -> Option<Duration> {
        if now.duration_since(self.last) > ANSWER_LIMIT {
            return None;
        }
        self.since.map(|since| now.duration_since(since))
    }
}

/// Finds or creates a KV bucket (file storage, the latest value only).
pub(crate) async fn bucket(
    js: &jetstream::Context,
    name: &str,
    replicas: usize,
) -> Result<kv::Store, StoreError> {
    match js.get_key_value(name).await {
        Ok(store) => Ok(store),
        Err(_) => js
            .create_key_value(kv::Config {
                bucket: name.to_string(),
                history: 1,
                storage: stream::StorageType::File,
                num_replicas: replicas,
                ..Default::default()
            })
            .await
            .map_err(|e| StoreError::Bucket {
                name: name.to_string(),
                why: e.to_string(),
            }),
    }
}

/// Runs `task` every `period` (delayed, never bunched up) until
/// `shutdown` turns true.
async fn every<F: std::future::Future<Output = ()>>(
    period: Duration,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
    mut task: impl FnMut() -> F,
) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stop = tokio::select! {
            _ = tick.tick() => false,
            _ = shutdown.wait_for(|stop| *stop) => true,
        };
        if stop {
            return;
        }
        task().await;
    }
}

pub(crate) fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_record_reads_back_as_written() {
        let record = SessionRecord {
            client_id: "c/1".into(),
            expiry_secs: 3600,
            disconnected_at: Some(5),
            subscriptions: vec![RecordedSubscription {
                filter: "a/+/b".into(),
                options: SubscriptionOptions {
                    qos: QoS::AtLeastOnce,
                    no_local: true,
                    retain_as_published: true,
                    retain_handling: RetainHandling::DoNotSend,
                },
                identifier: Some(7),
            }],
            oldest_held: None,
        };
        let doc = SessionDoc::of(&record, "node-1", 3, 42);
        let json = serde_json::to_vec(&doc).unwrap();
        let back: SessionDoc = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, doc);
        let rebuilt = back.record("c/1");
        assert_eq!(rebuilt.subscriptions, record.subscriptions);
        assert_eq!(rebuilt.oldest_held, Some(42));
        assert!(doc.same_but_position(&SessionDoc {
            position: 50,
            ..doc.clone()
        }));
        assert!(!doc.same_but_position(&SessionDoc {
            epoch: 4,
            ..doc.clone()
        }));
    }
}
