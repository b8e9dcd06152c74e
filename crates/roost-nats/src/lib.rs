//! A node's link to the other nodes of a cluster over core NATS
//! (`docs/cluster.md`).
//!
//! Out: the broker hands every message it accepted on this node to
//! [`NatsLink`] (its [`PeerLink`]), which queues it (bounded, overflow
//! counted) for one task that publishes it on the message's subject
//! ([`SubjectSpace::topic_subject`]). The body is an MQTT 5 PUBLISH in
//! roost-mqtt's codec: QoS, retain, the MQTT 5 properties, what is left of
//! the message expiry, the payload.
//!
//! In: one subscription to every subject of the space. NATS does not echo a
//! connection's own messages back to it, so what arrives was accepted by
//! another node; it goes to this node's subscribers through
//! [`Broker::deliver_from_peer`], which neither runs the rules (the node
//! that accepted it did) nor forwards it again.
//!
//! What this slice does not do yet: carry QoS 1 through JetStream (between
//! nodes a message is sent once, as QoS 0 is), send a node only what its
//! subscribers want, or spread a shared subscription over nodes.
//!
//! Never: block a publisher, or panic on what arrives from NATS.
#![forbid(unsafe_code)]

mod envelope;
mod lost;
mod retained;
mod stored;

pub use envelope::{decode, encode, EnvelopeError};
pub use stored::{StoreConfig, StoreError};

use futures_util::StreamExt;
use roost_broker::cluster::{BoxFuture, Confirmation, Forwarded, SessionRecord};
use roost_broker::{Broker, Message, PeerLink};
use roost_cluster::SubjectSpace;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use stored::Stored;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

/// How long a stopping node waits for NATS to take its last messages.
pub(crate) const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// How a node joins the cluster's NATS.
#[derive(Clone)]
pub struct NatsConfig {
    /// `nats://host:port` of one or more servers of the NATS cluster.
    pub urls: Vec<String>,
    /// This node's name, as NATS shows the connection.
    pub node_id: String,
    /// The operator's subject prefix (`roost` by default).
    pub subject_prefix: String,
    /// Messages waiting to be published to NATS; past it they are dropped
    /// and counted.
    pub queue_capacity: usize,
    /// The JetStream stream and bucket.
    pub store: StoreConfig,
}

impl std::fmt::Debug for NatsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsConfig")
            .field("urls", &self.masked_urls())
            .field("node_id", &self.node_id)
            .field("subject_prefix", &self.subject_prefix)
            .field("queue_capacity", &self.queue_capacity)
            .field("store", &self.store)
            .finish()
    }
}

impl NatsConfig {
    /// The server URLs with any user and password masked, for messages.
    fn masked_urls(&self) -> Vec<String> {
        self.urls.iter().map(|u| without_credentials(u)).collect()
    }

    pub const DEFAULT_PREFIX: &'static str = "roost";
    pub const DEFAULT_QUEUE_CAPACITY: usize = 65_536;
}

/// Why the link could not start.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error(transparent)]
    Prefix(#[from] roost_cluster::SubjectError),
    #[error("no NATS server answered at {urls}: {source}")]
    Connect {
        urls: String,
        source: async_nats::ConnectError,
    },
    #[error("NATS did not confirm the subscription: {0}")]
    Flush(String),
    #[error("subscribing to {subject}: {source}")]
    Subscribe {
        subject: String,
        source: async_nats::SubscribeError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The link's counters (`roost_cluster_*` in `/metrics`).
#[derive(Debug, Default)]
pub struct LinkCounters {
    /// Messages published to NATS for the other nodes.
    pub forwarded: AtomicU64,
    /// Messages not forwarded because the queue to NATS was full.
    pub dropped_queue_full: AtomicU64,
    /// Messages NATS did not take (the connection was gone, or the message
    /// had no subject or body: a topic too long for a subject).
    pub forward_failures: AtomicU64,
    /// Messages from other nodes routed to this node's subscribers.
    pub received: AtomicU64,
    /// Messages from NATS that were not a PUBLISH of this space.
    pub received_malformed: AtomicU64,
    /// Times NATS dropped messages for this node because it read them too
    /// slowly (the client's slow-consumer event).
    pub slow_consumer_events: AtomicU64,
    /// Messages NATS chose this node for, for one of its shared
    /// subscriptions.
    pub shared_received: AtomicU64,
    /// Of those, messages whose shared subscription had no member here any
    /// more when they arrived.
    pub shared_no_member: AtomicU64,
    /// Times a shared subscription could not be shared through NATS (it is
    /// tried again).
    pub shared_subscribe_failures: AtomicU64,
    /// Shared subscriptions this node holds in NATS now (a level, not a
    /// count).
    pub shared_held: AtomicU64,
    /// QoS 1/2 messages JetStream acknowledged storing.
    pub stored: AtomicU64,
    /// QoS 1/2 messages JetStream did not store in time (their publisher
    /// was told, or disconnected).
    pub store_failures: AtomicU64,
    /// Persistent sessions this node took over from the cluster's record.
    pub sessions_claimed: AtomicU64,
    /// Persistent sessions that ended here because another node took them.
    pub sessions_lost: AtomicU64,
    /// Session records written to the bucket.
    pub session_writes: AtomicU64,
    /// Session records not written (tried again).
    pub session_write_failures: AtomicU64,
    /// Messages replayed from the stream to taken-over sessions.
    pub replayed: AtomicU64,
    /// Replays that failed (the record keeps its place).
    pub replay_failures: AtomicU64,
    /// Rule runs whose acknowledgement JetStream did not take (the message
    /// may be run again on another node).
    pub rules_ack_failures: AtomicU64,
    /// Retained messages (and deletions) written to the cluster's bucket.
    pub retained_writes: AtomicU64,
    /// Retained changes not written to the bucket (it failed, or its queue
    /// was full): a node started later misses them.
    pub retained_write_failures: AtomicU64,
    /// Retained messages read from the bucket when the node started.
    pub retained_loaded: AtomicU64,
    /// Connection records not written or removed (if the node dies, those
    /// connections' wills and disconnections are not sent, or are sent
    /// although they ended).
    pub connection_record_failures: AtomicU64,
    /// Connections of gone nodes this node ended (lifecycle event, will).
    pub lost_connections_ended: AtomicU64,
}

impl LinkCounters {
    /// Each counter with its name and description, for exporters.
    pub fn fields(&self) -> [(&'static str, &'static str, u64); 23] {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            (
                "forwarded",
                "messages published to NATS for the other nodes",
                load(&self.forwarded),
            ),
            (
                "forward_dropped_queue_full",
                "messages not forwarded to the other nodes because the queue to NATS was full",
                load(&self.dropped_queue_full),
            ),
            (
                "forward_failures",
                "messages NATS did not take (disconnected, or a topic too long for a subject)",
                load(&self.forward_failures),
            ),
            (
                "received",
                "messages from other nodes routed to this node's subscribers",
                load(&self.received),
            ),
            (
                "received_malformed",
                "messages from NATS that were not a PUBLISH of this cluster's subjects",
                load(&self.received_malformed),
            ),
            (
                "slow_consumer_events",
                "times NATS dropped messages for this node because it read them too slowly",
                load(&self.slow_consumer_events),
            ),
            ("shared_received", "messages NATS chose this node for, for one of its shared subscriptions", load(&self.shared_received)),
            ("shared_no_member", "messages for a shared subscription that had no member here any more when they arrived", load(&self.shared_no_member)),
            ("shared_subscribe_failures", "times a shared subscription could not be shared through NATS (tried again)", load(&self.shared_subscribe_failures)),
            ("stored", "QoS 1/2 messages JetStream acknowledged storing", load(&self.stored)),
            ("store_failures", "QoS 1/2 messages JetStream did not store in time (publisher told or disconnected)", load(&self.store_failures)),
            ("sessions_claimed", "persistent sessions this node took over from the cluster's record", load(&self.sessions_claimed)),
            ("sessions_lost", "persistent sessions that ended here because another node took them", load(&self.sessions_lost)),
            ("session_writes", "persistent session records written to the KV bucket", load(&self.session_writes)),
            ("session_write_failures", "session records not written to the KV bucket (tried again)", load(&self.session_write_failures)),
            ("replayed", "messages replayed from the stream to taken-over sessions", load(&self.replayed)),
            ("rules_ack_failures", "rule runs of stored messages whose acknowledgement JetStream did not take (may run again elsewhere)", load(&self.rules_ack_failures)),
            ("replay_failures", "replays of taken-over sessions that failed (the record keeps its place)", load(&self.replay_failures)),
            ("retained_writes", "retained messages (and deletions) written to the cluster's KV bucket", load(&self.retained_writes)),
            ("retained_write_failures", "retained changes not written to the cluster's KV bucket (a node started later misses them)", load(&self.retained_write_failures)),
            ("retained_loaded", "retained messages read from the cluster's KV bucket when the node started", load(&self.retained_loaded)),
            ("connection_record_failures", "connection records not written to or removed from the cluster's KV bucket", load(&self.connection_record_failures)),
            ("lost_connections_ended", "connections of gone nodes this node ended (disconnected event, will)", load(&self.lost_connections_ended)),
        ]
    }
}

/// Whether `url` is a NATS server address the client accepts
/// (`nats://host:port`, `tls://host:port`, or `host:port`).
pub fn check_url(url: &str) -> Result<(), String> {
    url.parse::<async_nats::ServerAddr>()
        .map(|_| ())
        .map_err(|e| {
            format!(
                "'{}' is not a NATS server address: {e}",
                without_credentials(url)
            )
        })
}

/// `url` with any user and password replaced by `***`, for messages.
pub fn without_credentials(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// What the node tells the others, in the order it happened.
enum Outgoing {
    Message(Arc<Message>),
    /// A QoS 1/2 message to store in the stream.
    Stored(Arc<Message>, Arc<Confirmation>),
    /// A client took this client id here at this time (Unix ms).
    Connected(String, i64),
}

/// The subject of [`Outgoing::Connected`] announcements.
const CONNECTED: &str = "connected";

/// The broker's side of the link: queues what the node accepted.
pub struct NatsLink {
    queue: mpsc::Sender<Outgoing>,
    /// Retained changes for the cluster's bucket (crate::retained).
    retained: mpsc::Sender<retained::Change>,
    /// Connections opened and closed here (crate::lost).
    connections: mpsc::Sender<lost::Change>,
    counters: Arc<LinkCounters>,
    stored: Arc<Stored>,
    broker: Broker,
}

impl NatsLink {
    fn queue(&self, outgoing: Outgoing) {
        if let Err(refused) = self.queue.try_send(outgoing) {
            self.counters
                .dropped_queue_full
                .fetch_add(1, Ordering::Relaxed);
            if let Outgoing::Stored(_, confirmation) = refused.into_inner() {
                confirmation.confirm(false);
            }
        }
    }
}

impl NatsLink {
    fn keep_connection(&self, change: lost::Change) {
        if self.connections.try_send(change).is_err() {
            self.counters
                .connection_record_failures
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    fn keep_retained(&self, message: &Arc<Message>, stored: Option<Arc<Confirmation>>) {
        let change = retained::Change {
            message: message.clone(),
            set_at: stored::unix_now_ms(),
            stored,
        };
        if self.retained.try_send(change).is_err() {
            self.counters
                .retained_write_failures
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(topic = %message.topic, "a retained message was not written to the cluster's bucket: its queue was full");
        }
    }
}

impl PeerLink for NatsLink {
    fn forward(&self, message: &Arc<Message>) -> Forwarded {
        if message.qos == roost_mqtt::QoS::AtMostOnce {
            self.queue(Outgoing::Message(message.clone()));
            if message.retain {
                self.keep_retained(message, None);
            }
            return Forwarded::Sent;
        }
        let confirmation = Confirmation::new();
        self.queue(Outgoing::Stored(message.clone(), confirmation.clone()));
        if message.retain {
            self.keep_retained(message, Some(confirmation.clone()));
        }
        Forwarded::Storing(confirmation)
    }

    fn keeps_retained(&self) -> bool {
        true
    }

    fn connection_opened(&self, record: &roost_broker::cluster::ConnectionRecord) {
        self.keep_connection(lost::Change::Opened(Box::new(record.clone())));
    }

    fn connection_closed(&self, client_id: &str, conn_id: u64) {
        self.keep_connection(lost::Change::Closed(client_id.to_string(), conn_id));
    }

    fn client_connected(&self, client_id: &str, at: i64) {
        self.queue(Outgoing::Connected(client_id.to_string(), at));
    }

    fn keeps_sessions(&self) -> bool {
        true
    }

    fn claim_session<'a>(
        &'a self,
        client_id: &'a str,
        clean_start: bool,
        here: bool,
    ) -> BoxFuture<'a, Result<Option<SessionRecord>, String>> {
        Box::pin(async move {
            match tokio::time::timeout(
                CLAIM_TIMEOUT,
                self.stored.claim(client_id, clean_start, here),
            )
            .await
            {
                Ok(claimed) => claimed,
                Err(_) => Err("the session bucket did not answer in time".into()),
            }
        })
    }

    fn session_moved_here(&self, client_id: &str) {
        let (stored, broker, client_id) = (
            self.stored.clone(),
            self.broker.clone(),
            client_id.to_string(),
        );
        tokio::spawn(async move { stored.replay(&broker, &client_id).await });
    }

    fn session_ended(&self, client_id: &str) {
        let (stored, client_id) = (self.stored.clone(), client_id.to_string());
        tokio::spawn(async move { stored.forget(&client_id).await });
    }
}

/// How long a CONNECT waits for the session bucket.
const CLAIM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// QoS 1/2 messages being stored at once; past it the queue waits.
const MAX_STORING: usize = 4096;

/// A [`Outgoing::Connected`] body: the time, a newline, the client id.
fn connected_body(client_id: &str, at: i64) -> bytes::Bytes {
    bytes::Bytes::from(format!("{at}\n{client_id}"))
}

fn parse_connected(body: &[u8]) -> Option<(&str, i64)> {
    let text = std::str::from_utf8(body).ok()?;
    let (at, client_id) = text.split_once('\n')?;
    Some((client_id, at.parse().ok()?))
}

/// A node joined to the cluster: its tasks and counters.
pub struct Joined {
    counters: Arc<LinkCounters>,
    tasks: JoinSet<()>,
    clients: [async_nats::Client; 2],
    stored: Arc<Stored>,
}

impl Joined {
    /// Whether both connections to NATS are up now (why not, if not), as a
    /// check `/readyz` can keep,
    /// and JetStream stored the node's heartbeat lately (a node whose NATS
    /// lost its quorum is still connected, but stores nothing).
    pub fn connection_check(&self) -> impl Fn() -> Result<(), String> + Send + Sync + 'static {
        let (clients, stored) = (self.clients.clone(), self.stored.clone());
        move || {
            clients
                .iter()
                .try_for_each(|client| match client.connection_state() {
                    async_nats::connection::State::Connected => Ok(()),
                    other => Err(format!("NATS connection {other}")),
                })?;
            stored.answering()
        }
    }

    pub fn counters(&self) -> &Arc<LinkCounters> {
        &self.counters
    }

    /// Waits for the link's tasks, which end when the shutdown signal turns.
    pub async fn stopped(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Connects to NATS and joins `broker` to the cluster until `shutdown`
/// turns true.
pub async fn join(
    broker: &Broker,
    config: NatsConfig,
    shutdown: watch::Receiver<bool>,
) -> Result<Joined, JoinError> {
    let space = SubjectSpace::new(&config.subject_prefix)?;
    let counters = Arc::new(LinkCounters::default());
    let client = connect(&config, "", true, &counters).await?;
    // Shared subscriptions need a connection that hears this node's own
    // messages too: NATS may choose this node for them.
    let sharing = connect(&config, " shared", false, &counters).await?;
    let stored = Arc::new(
        Stored::open(
            &client,
            &space,
            &config.node_id,
            &config.store,
            counters.clone(),
        )
        .await?,
    );
    let mut subscribers = Vec::new();
    for subject in space
        .all_messages()
        .into_iter()
        .chain([space.control_subject(CONNECTED)])
    {
        let subscriber = client.subscribe(subject.clone()).await;
        subscribers.push(subscriber.map_err(|source| JoinError::Subscribe { subject, source })?);
    }
    let subscriber = futures_util::stream::select_all(subscribers);
    // The server has the subscription before any node publishes to it.
    client
        .flush()
        .await
        .map_err(|e| JoinError::Flush(e.to_string()))?;
    // Before any client: what the cluster retains, as it is now.
    let loaded = retained::load(&stored.retained, &space, broker).await?;
    counters
        .retained_loaded
        .fetch_add(loaded, Ordering::Relaxed);
    let (queue, outbox) = mpsc::channel(config.queue_capacity.max(1));
    let (retained_changes, retained_queue) = mpsc::channel(retained::QUEUE_CAPACITY);
    let (connection_changes, connection_queue) = mpsc::channel(lost::QUEUE_CAPACITY);
    broker.set_peer_link(Arc::new(NatsLink {
        queue,
        retained: retained_changes,
        connections: connection_changes,
        counters: counters.clone(),
        stored: stored.clone(),
        broker: broker.clone(),
    }));
    let clients = [client.clone(), sharing.clone()];
    let mut tasks = JoinSet::new();
    let sender = Sender {
        client,
        space: space.clone(),
        stored: stored.clone(),
        started: stored::unix_now_ms(),
        counters: counters.clone(),
    };
    tasks.spawn(publish_forwarded(sender, outbox, shutdown.clone()));
    tasks.spawn(deliver_received(
        broker.clone(),
        space.clone(),
        subscriber,
        counters.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(again_until_stopped(
        "reading the cluster's stream",
        shutdown.clone(),
        {
            let (broker, stored) = (broker.clone(), stored.clone());
            move || stored.clone().read(broker.clone())
        },
    ));
    tasks.spawn(again_until_stopped(
        "running the rules of the cluster's stream",
        shutdown.clone(),
        {
            let (broker, stored) = (broker.clone(), stored.clone());
            move || stored.clone().run_rules(broker.clone())
        },
    ));
    tasks.spawn(retained::write(
        stored.retained.clone(),
        retained_queue,
        counters.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(lost::write(
        stored.clone(),
        connection_queue,
        counters.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(again_until_stopped(
        "ending the connections of gone nodes",
        shutdown.clone(),
        {
            let (broker, stored, shutdown) = (broker.clone(), stored.clone(), shutdown.clone());
            move || lost::end_gone(stored.clone(), broker.clone(), shutdown.clone())
        },
    ));
    tasks.spawn(stored.clone().watch_jetstream(shutdown.clone()));
    tasks.spawn(
        stored
            .clone()
            .keep_sessions(broker.clone(), shutdown.clone()),
    );
    tasks.spawn(share_subscriptions(
        broker.clone(),
        space,
        sharing,
        counters.clone(),
        shutdown,
    ));
    Ok(Joined {
        counters,
        tasks,
        clients,
        stored,
    })
}

/// A writer's queue read until its node stops, then for [`SHUTDOWN_GRACE`]
/// more (what was queued before is written if NATS still answers).
pub(crate) struct UntilStopped<'a, T> {
    queue: &'a mut mpsc::Receiver<T>,
    shutdown: &'a mut watch::Receiver<bool>,
    deadline: Option<tokio::time::Instant>,
}

impl<'a, T> UntilStopped<'a, T> {
    pub(crate) fn new(
        queue: &'a mut mpsc::Receiver<T>,
        shutdown: &'a mut watch::Receiver<bool>,
    ) -> Self {
        Self {
            queue,
            shutdown,
            deadline: None,
        }
    }

    /// The next item; `None` once the queue closed or the grace ran out.
    pub(crate) async fn next(&mut self) -> Option<T> {
        loop {
            if let Some(deadline) = self.deadline {
                return tokio::time::timeout_at(deadline, self.queue.recv())
                    .await
                    .ok()
                    .flatten();
            }
            tokio::select! {
                item = self.queue.recv() => return item,
                _ = self.shutdown.wait_for(|stop| *stop) => {
                    self.deadline = Some(tokio::time::Instant::now() + SHUTDOWN_GRACE);
                }
            }
        }
    }
}

/// Runs `task` until `shutdown`, starting it again 200 ms after it broke
/// (each start goes on from where the last one left).
async fn again_until_stopped<F, T>(what: &'static str, mut shutdown: watch::Receiver<bool>, task: T)
where
    T: Fn() -> F,
    F: std::future::Future<Output = Result<(), String>>,
{
    loop {
        tokio::select! {
            ended = task() => {
                if let Err(error) = ended {
                    tracing::warn!(%error, "{what}; starting again");
                }
            }
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

/// A connection to NATS, named after the node; `no_echo` keeps the node's
/// own messages from coming back on it.
async fn connect(
    config: &NatsConfig,
    purpose: &str,
    no_echo: bool,
    counters: &Arc<LinkCounters>,
) -> Result<async_nats::Client, JoinError> {
    let events = counters.clone();
    let mut options = async_nats::ConnectOptions::new()
        .name(format!("roost {}{purpose}", config.node_id))
        .max_reconnects(None)
        .event_callback(move |event| {
            let events = events.clone();
            async move {
                match event {
                    async_nats::Event::SlowConsumer(_) => {
                        events.slow_consumer_events.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            "NATS dropped messages for this node: it read them too slowly"
                        );
                    }
                    async_nats::Event::Connected => tracing::info!("connected to NATS"),
                    other => tracing::warn!("NATS: {other}"),
                }
            }
        });
    if no_echo {
        options = options.no_echo();
    }
    options
        .connect(config.urls.as_slice())
        .await
        .map_err(|source| JoinError::Connect {
            urls: config.masked_urls().join(", "),
            source,
        })
}

/// Publishes what the node accepted, in the order it was accepted; QoS
/// 1/2 messages go to the stream, and their acknowledgements are awaited
/// (at most [`MAX_STORING`] at once) while the next ones go out.
async fn publish_forwarded(
    sender: Sender,
    mut outbox: mpsc::Receiver<Outgoing>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut storing = JoinSet::new();
    loop {
        let message = tokio::select! {
            message = outbox.recv(), if storing.len() < MAX_STORING => message,
            Some(_) = storing.join_next(), if !storing.is_empty() => continue,
            _ = shutdown.wait_for(|stop| *stop) => None,
        };
        let Some(message) = message else { break };
        sender.send(message, &mut storing).await;
    }
    // What was accepted before the signal still goes out, if NATS takes it
    // within the grace; a node that lost NATS does not wait for it.
    let drain = async {
        while let Ok(message) = outbox.try_recv() {
            sender.send(message, &mut storing).await;
        }
        while storing.join_next().await.is_some() {}
        let _ = sender.client.flush().await;
    };
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        tracing::warn!("NATS did not take this node's last messages before shutdown");
    }
}

/// What publishes the node's messages to NATS.
struct Sender {
    client: async_nats::Client,
    space: SubjectSpace,
    stored: Arc<Stored>,
    /// When the node started (Unix ms), in its message ids.
    started: i64,
    counters: Arc<LinkCounters>,
}

impl Sender {
    async fn send(&self, outgoing: Outgoing, storing: &mut JoinSet<()>) {
        let Self {
            client,
            space,
            counters,
            ..
        } = self;
        let message = match outgoing {
            Outgoing::Message(message) => message,
            Outgoing::Connected(client_id, at) => {
                let subject = space.control_subject(CONNECTED);
                if client
                    .publish(subject, connected_body(&client_id, at))
                    .await
                    .is_err()
                {
                    counters.forward_failures.fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
            Outgoing::Stored(message, confirmation) => {
                return self.store(&message, confirmation, storing).await;
            }
        };
        let message = &*message;
        let sent = match (
            space.topic_subject(&message.topic),
            encode(message, Instant::now()),
        ) {
            (Ok(subject), Ok(Some(body))) => client.publish(subject, body).await.is_ok(),
            // Expired while it waited: nobody may receive it now.
            (Ok(_), Ok(None)) => return,
            _ => false,
        };
        let counter = if sent {
            &counters.forwarded
        } else {
            &counters.forward_failures
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Hands one QoS 1/2 message to the stream: sent in order here,
    /// acknowledged in any order there; `confirmation` gets the verdict.
    async fn store(
        &self,
        message: &Message,
        confirmation: Arc<Confirmation>,
        storing: &mut JoinSet<()>,
    ) {
        let out = match self.stored.outbound(message, self.started) {
            Ok(Some(out)) => out,
            // Expired while it waited: nobody may receive it now.
            Ok(None) => return confirmation.confirm(true),
            Err(error) => {
                tracing::warn!(%error, "a QoS 1 message cannot be stored");
                self.counters.store_failures.fetch_add(1, Ordering::Relaxed);
                return confirmation.confirm(false);
            }
        };
        let first = self.stored.send(&out).await;
        let (stored, counters) = (self.stored.clone(), self.counters.clone());
        storing.spawn(async move {
            let ok = stored.store(out, first).await;
            let counter = if ok {
                &counters.stored
            } else {
                tracing::warn!("a QoS 1 message was not stored in time; its publisher is told");
                &counters.store_failures
            };
            counter.fetch_add(1, Ordering::Relaxed);
            confirmation.confirm(ok);
        });
    }
}

/// How long a shared subscription NATS refused waits before it is tried
/// again.
const SHARE_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// Keeps NATS queue subscriptions for exactly the shared subscriptions that
/// have a member on this node: each message of one goes to one node of the
/// cluster, then to one member there.
async fn share_subscriptions(
    broker: Broker,
    space: SubjectSpace,
    client: async_nats::Client,
    counters: Arc<LinkCounters>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mode = broker.match_mode();
    let mut held: HashMap<String, Vec<tokio::task::AbortHandle>> = HashMap::new();
    let mut tasks = JoinSet::new();
    loop {
        let (wanted, mut changes) = broker.shared_subscriptions();
        held.retain(|filter, readers| {
            let keep = wanted.contains(filter);
            if !keep {
                // Dropping a reader's subscription unsubscribes it.
                readers.iter().for_each(tokio::task::AbortHandle::abort);
            }
            keep
        });
        let mut failed = false;
        for filter in wanted {
            if held.contains_key(&filter) {
                continue;
            }
            match share(&client, &space, &filter, mode).await {
                Ok(subscribers) => {
                    let readers = subscribers
                        .into_iter()
                        .map(|subscriber| {
                            tasks.spawn(deliver_shared(
                                broker.clone(),
                                space.clone(),
                                filter.clone(),
                                subscriber,
                                counters.clone(),
                            ))
                        })
                        .collect();
                    held.insert(filter, readers);
                }
                Err(error) => {
                    failed = true;
                    counters
                        .shared_subscribe_failures
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%error, "a shared subscription could not be shared through NATS; trying again");
                }
            }
        }
        // Once NATS confirmed them, they count as held.
        if client.flush().await.is_ok() {
            counters
                .shared_held
                .store(held.len() as u64, Ordering::Relaxed);
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { break },
            _ = tokio::time::sleep(SHARE_RETRY), if failed => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
    tasks.abort_all();
}

/// The NATS queue subscriptions for one shared subscription.
async fn share(
    client: &async_nats::Client,
    space: &SubjectSpace,
    filter: &str,
    mode: roost_cluster::MatchMode,
) -> Result<Vec<async_nats::Subscriber>, String> {
    let subjects = space
        .filter_subscriptions(filter, mode)
        .map_err(|e| e.to_string())?;
    let queue = subjects
        .queue_group
        .ok_or_else(|| "not a shared subscription".to_string())?;
    // QoS 1/2 messages travel on their stored subjects (which NATS also
    // hands to plain subscribers as it stores them).
    let stored = space
        .stored()
        .filter_subscriptions(filter, mode)
        .map_err(|e| e.to_string())?;
    let mut subscribers = Vec::with_capacity(subjects.subjects.len() * 2);
    for subject in subjects.subjects.into_iter().chain(stored.subjects) {
        subscribers.push(
            client
                .queue_subscribe(subject, queue.clone())
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    Ok(subscribers)
}

/// Delivers what NATS chose this node for to one member of `filter`.
async fn deliver_shared(
    broker: Broker,
    space: SubjectSpace,
    filter: String,
    mut subscriber: async_nats::Subscriber,
    counters: Arc<LinkCounters>,
) {
    let stored = space.stored();
    while let Some(received) = subscriber.next().await {
        let space = match received.subject.starts_with(stored.prefix()) {
            true => &stored,
            false => &space,
        };
        if let Some(message) = decode_counted(space, &received, &counters) {
            counters.shared_received.fetch_add(1, Ordering::Relaxed);
            if broker.deliver_shared_from_peer(&filter, message) == 0 {
                counters.shared_no_member.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Routes what other nodes accepted to this node's subscribers.
async fn deliver_received(
    broker: Broker,
    space: SubjectSpace,
    mut subscriber: futures_util::stream::SelectAll<async_nats::Subscriber>,
    counters: Arc<LinkCounters>,
    mut shutdown: watch::Receiver<bool>,
) {
    let connected = space.control_subject(CONNECTED);
    loop {
        let received = tokio::select! {
            received = subscriber.next() => received,
            _ = shutdown.wait_for(|stop| *stop) => None,
        };
        let Some(received) = received else { break };
        if *received.subject == *connected {
            match parse_connected(&received.payload) {
                Some((client_id, at)) => {
                    broker.take_over_from_peer(client_id, at);
                }
                None => {
                    counters.received_malformed.fetch_add(1, Ordering::Relaxed);
                }
            }
            continue;
        }
        if let Some(message) = decode_counted(&space, &received, &counters) {
            counters.received.fetch_add(1, Ordering::Relaxed);
            broker.deliver_from_peer(message);
        }
    }
}

/// The message `received` carries; `None`, counted and logged, when it is
/// not one of this space's.
fn decode_counted(
    space: &SubjectSpace,
    received: &async_nats::Message,
    counters: &LinkCounters,
) -> Option<Message> {
    match decode(space, &received.subject, &received.payload, Instant::now()) {
        Ok(message) => Some(message),
        Err(error) => {
            counters.received_malformed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%error, "ignored a message from NATS");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_read_back() {
        let body = connected_body("a\nb", 42);
        assert_eq!(parse_connected(&body), Some(("a\nb", 42)));
        for bad in [&b"x\nid"[..], b"42", b"\xff\n1"] {
            assert_eq!(parse_connected(bad), None);
        }
    }

    #[test]
    fn credentials_never_reach_a_message() {
        assert_eq!(
            without_credentials("nats://u:secret@h:4222"),
            "nats://***@h:4222"
        );
        assert_eq!(without_credentials("nats://h:4222"), "nats://h:4222");
        let config = NatsConfig {
            urls: vec!["tls://token@h:4222".into()],
            node_id: "n".into(),
            subject_prefix: "roost".into(),
            queue_capacity: 1,
            store: StoreConfig::default(),
        };
        assert!(!format!("{config:?}").contains("token"));
        assert!(check_url("nats://127.0.0.1:4222").is_ok());
        let refused = check_url("http://u:secret@h").unwrap_err();
        assert!(!refused.contains("secret"), "{refused}");
    }
}
