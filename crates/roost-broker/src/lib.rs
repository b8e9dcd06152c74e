//! The device gateway: MQTT 3.1.1 and 5 over mutual TLS (and, for
//! development, plain TCP under a configured principal), with every CONNECT,
//! PUBLISH, SUBSCRIBE and delivery authorized by the connection's IoT
//! policies.
//!
//! What flows: a listener accepts a socket and, for TLS, completes the
//! handshake off the accept loop; the client certificate is looked up in the
//! registry (it must be registered and ACTIVE); the connection task then
//! reads CONNECT, authorizes it, attaches the session and serves packets.
//! Every accepted PUBLISH is routed through the subscription index to the
//! matching sessions' bounded queues, from which each connection writes,
//! checking `iot:Receive` per delivery.
//!
//! This crate never blocks the accept loop on a peer, never buffers without a
//! bound, and never drops a message without counting it.
#![forbid(unsafe_code)]

mod authz;
pub mod cluster;
mod connect;
mod connection;
mod event_log;
mod events;
mod gateway;
mod https;
mod journal;
mod listener;
mod message;
pub mod metrics;
pub mod persist;
mod publish;
mod router;
pub mod service;
mod session;
mod state;
mod sync;
pub mod tls;

pub use gateway::{DeviceListeners, DeviceTls, RunningGateway, HOUSEKEEPING_INTERVAL};
pub use journal::StateUnavailable;
pub use listener::PlainPrincipal;
pub use metrics::{Field as MetricField, MetricsSnapshot};
pub use persist::{BrokerStore, PersistError, StateCounts, StateSync, StateWriter};
pub use publish::PublishRefusal;

use metrics::Metrics;
use roost_registry::{Registry, RegistryEvent};
use router::{Reach, Router};
use session::SessionTable;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Which MQTT feature set the gateway offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Profile {
    /// AWS IoT Core's behaviour: QoS 0 and 1 only, AWS's limits and topic
    /// matching, retained messages sent only to exact-topic subscriptions.
    #[default]
    Aws,
    /// A general-purpose MQTT broker with AWS-style security: QoS 2, MQTT
    /// topic matching, retained messages for wildcard subscriptions, MQTT's
    /// size limits.
    Full,
}

impl Profile {
    /// The topic and filter limits the profile enforces.
    pub(crate) fn topic_limits(self) -> roost_topic::TopicLimits {
        match self {
            Profile::Aws => roost_topic::TopicLimits::aws(),
            Profile::Full => roost_topic::TopicLimits::general(),
        }
    }

    /// How the profile matches filters: AWS's `#` or MQTT's.
    pub fn match_mode(self) -> roost_topic::MatchMode {
        match self {
            Profile::Aws => roost_topic::MatchMode::Aws,
            Profile::Full => roost_topic::MatchMode::Mqtt,
        }
    }
}

impl std::str::FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "aws" => Ok(Profile::Aws),
            "full" => Ok(Profile::Full),
            other => Err(format!(
                "unknown MQTT profile '{other}': use 'aws' or 'full'"
            )),
        }
    }
}

/// Every bound the gateway enforces, named.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Live connections plus TLS handshakes in progress.
    pub max_connections: usize,
    /// How long a TLS handshake may take.
    pub handshake_timeout: Duration,
    /// How long a client may take to send CONNECT after the handshake.
    pub connect_timeout: Duration,
    /// How long one write to a client may block before the client is cut.
    pub write_timeout: Duration,
    /// Unacknowledged QoS 1 messages in flight to one client (AWS: 100).
    pub max_inflight: u16,
    /// The mark of a session's queue: past it, the publishers feeding a
    /// connected session are slowed (their sockets no longer read) until it
    /// has drained to half. A queue holds at most twice the mark (room for
    /// the message each slowed publisher adds before it stops, and for what
    /// a slow consumer's persistent session keeps once disconnected); only
    /// past that is a message dropped, counted (offline, as AWS does).
    pub max_queued_messages: usize,
    /// Payload bytes queued for one session, the same way.
    pub max_queued_bytes: usize,
    /// How long a connected subscriber may keep a publisher waiting for room
    /// in its queue before it is disconnected as a slow consumer (its
    /// persistent session, if any, keeps what was queued).
    pub slow_consumer_timeout: Duration,
    /// Subscriptions one session may hold (AWS: 50).
    pub max_subscriptions: usize,
    /// Session expiry for persistent sessions when the client sets none
    /// (MQTT 3.1.1, or MQTT 5 without the property; AWS: 1 hour).
    pub default_session_expiry: Duration,
    /// The longest session expiry a client may ask for (AWS: 7 days).
    pub max_session_expiry: Duration,
    /// Keep-alive bounds in seconds (AWS: 30–1200, 0 means the maximum; full: 65,535, an MQTT 5 client asking for 0 or more gets it).
    pub min_keep_alive: u16,
    pub max_keep_alive: u16,
    /// The largest PUBLISH payload accepted (AWS: 128 KiB).
    pub max_payload_bytes: usize,
    /// Topic aliases a client may use towards the server (AWS: 8).
    pub topic_alias_maximum: u16,
    /// How far a device's clock and ours may disagree when a client
    /// certificate's validity is checked (at every handshake, and for live
    /// connections, whose certificate expiring closes them).
    pub certificate_clock_skew: Duration,
    /// Device HTTPS: how long a request's headers (or the wait for the next
    /// request on a kept-alive connection) and its body may take.
    pub https_header_timeout: Duration,
    pub https_body_timeout: Duration,
}

impl Limits {
    pub fn for_profile(profile: Profile) -> Self {
        let aws = Limits {
            max_connections: 20_000,
            handshake_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            max_inflight: 100,
            max_queued_messages: 1_000,
            max_queued_bytes: 16 * 1024 * 1024,
            slow_consumer_timeout: Duration::from_secs(30),
            max_subscriptions: 50,
            default_session_expiry: Duration::from_secs(3600),
            max_session_expiry: Duration::from_secs(7 * 24 * 3600),
            min_keep_alive: 30,
            max_keep_alive: 1200,
            max_payload_bytes: roost_mqtt::AWS_MAX_PAYLOAD_BYTES,
            topic_alias_maximum: 8,
            certificate_clock_skew: Duration::from_secs(5 * 60),
            https_header_timeout: Duration::from_secs(30),
            https_body_timeout: Duration::from_secs(30),
        };
        match profile {
            Profile::Aws => aws,
            Profile::Full => Limits {
                max_subscriptions: 1_000,
                min_keep_alive: 0,
                max_keep_alive: u16::MAX,
                max_payload_bytes: 16 * 1024 * 1024,
                ..aws
            },
        }
    }
}

#[derive(Clone, Debug)]
pub struct BrokerConfig {
    pub profile: Profile,
    pub limits: Limits,
    /// The load balancers whose connections to the device listeners start
    /// with a PROXY protocol header (`--proxy-protocol-from`); empty: none.
    pub proxy_protocol_from: Vec<roost_listener::proxy::IpNet>,
}

impl BrokerConfig {
    pub fn new(profile: Profile) -> Self {
        Self {
            profile,
            limits: Limits::for_profile(profile),
            proxy_protocol_from: Vec::new(),
        }
    }

    /// A device listener's accept settings: its name, its cap, and the
    /// PROXY protocol from the trusted networks, whose header has as long
    /// as a TLS handshake.
    pub(crate) fn device_listener(
        &self,
        name: &'static str,
        max_connections: usize,
    ) -> roost_listener::ListenerConfig {
        roost_listener::ListenerConfig {
            proxy: roost_listener::ProxyProtocol::new(
                self.proxy_protocol_from.clone(),
                self.limits.handshake_timeout,
            ),
            ..roost_listener::ListenerConfig::new(name, max_connections)
        }
    }
}

/// Why the gateway closed a connection on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kick {
    /// Another connection took over the client id.
    TakenOver,
    /// The certificate left ACTIVE or was deleted.
    CertificateRevoked,
    /// The certificate's validity ended.
    CertificateExpired,
    /// The client kept a publisher waiting for room in its queue for longer
    /// than the slow-consumer timeout.
    SlowConsumer,
    /// The server is shutting down.
    Shutdown,
}

/// Tells one connection to close, and why. A `Notify` and a byte: thousands
/// of idle connections each hold one, so it is kept small.
#[derive(Debug, Default)]
pub(crate) struct KickSignal {
    reason: std::sync::atomic::AtomicU8,
    notify: tokio::sync::Notify,
}

impl KickSignal {
    pub(crate) fn send(&self, kick: Kick) {
        let code = match kick {
            Kick::TakenOver => 1,
            Kick::CertificateRevoked => 2,
            Kick::Shutdown => 3,
            Kick::CertificateExpired => 4,
            Kick::SlowConsumer => 5,
        };
        self.reason.store(code, Ordering::Release);
        // notify_one keeps a permit when nobody waits yet: no lost wake-up.
        self.notify.notify_one();
    }

    pub(crate) async fn received(&self) -> Kick {
        loop {
            match self.reason.load(Ordering::Acquire) {
                1 => return Kick::TakenOver,
                2 => return Kick::CertificateRevoked,
                3 => return Kick::Shutdown,
                4 => return Kick::CertificateExpired,
                5 => return Kick::SlowConsumer,
                _ => self.notify.notified().await,
            }
        }
    }
}

/// A device connection the gateway can close: registered as soon as its
/// TLS handshake completes (before its certificate is even looked up), so
/// that no revocation can miss it.
struct LiveConnection {
    /// Set at CONNECT (MQTT); HTTPS connections have none.
    client_id: Option<String>,
    /// When it took its client id, Unix ms: of two connections with one
    /// client id on two nodes, the later keeps it.
    client_id_at: i64,
    certificate_id: String,
    /// When the certificate stops being valid, Unix ms.
    certificate_not_after: i64,
    kick: Arc<KickSignal>,
}

/// A connection's place in the live table, left when dropped.
pub(crate) struct LiveEntry {
    shared: Arc<Shared>,
    pub(crate) conn_id: u64,
    pub(crate) kick: Arc<KickSignal>,
}

impl LiveEntry {
    /// Gives the connection its client id, closing any other connection
    /// that has it (session takeover).
    pub(crate) fn take_client_id(&self, client_id: &str) {
        let mut live = self.shared.live();
        self.shared
            .take_over(&live, client_id, |id, _| id != self.conn_id);
        let at = message::unix_ms(std::time::SystemTime::now());
        if let Some(me) = live.get_mut(&self.conn_id) {
            me.client_id = Some(client_id.to_string());
            me.client_id_at = at;
        }
        drop(live);
        if let Some(link) = self.shared.peer_link.get() {
            link.client_connected(client_id, at);
        }
    }
}

impl Drop for LiveEntry {
    fn drop(&mut self) {
        self.shared.live().remove(&self.conn_id);
    }
}

/// Receives every accepted message after it was routed (the rules engine).
/// `offer` runs on the publishing connection's task: it must not block, and
/// must not fail the publish.
pub trait MessageTap: Send + Sync {
    fn offer(&self, message: &Arc<message::Message>);

    /// Processes `message` and completes once done (a cluster node runs
    /// the rules of stored messages this way, from the rules' work queue,
    /// and acknowledges them after). By default: offered, done at once.
    fn run<'a>(&'a self, message: Arc<message::Message>) -> cluster::BoxFuture<'a, ()> {
        self.offer(&message);
        Box::pin(async {})
    }
}

/// Carries the messages this node accepted to the other nodes of a cluster
/// (roost-nats); the other nodes' messages come back through
/// [`Broker::deliver_from_peer`]. `forward` runs on the publishing
/// connection's task: it must not block, and must not fail the publish.
pub trait PeerLink: Send + Sync {
    /// Sends `message` to the other nodes, or stores it for every node
    /// (`cluster.rs`).
    fn forward(&self, message: &Arc<message::Message>) -> cluster::Forwarded;

    /// A client took `client_id` on this node at `at` (Unix ms): the other
    /// nodes close their older connections with it
    /// ([`Broker::take_over_from_peer`]).
    fn client_connected(&self, client_id: &str, at: i64);

    /// A client connected here (its CONNACK sent): the cluster keeps the
    /// connection, so that if this node dies another ends it as this one
    /// would ([`Broker::announce_lost_connection`],
    /// [`Broker::send_lost_will`]).
    fn connection_opened(&self, _record: &cluster::ConnectionRecord) {}

    /// The connection `conn_id` of `client_id` ended here, its will sent or
    /// discarded.
    fn connection_closed(&self, _client_id: &str, _conn_id: u64) {}

    /// Whether retained messages live in the cluster: then the gateway
    /// state's own are not restored at start (the link puts back the
    /// cluster's with [`Broker::restore_retained_from_cluster`]).
    fn keeps_retained(&self) -> bool {
        false
    }

    /// Whether persistent sessions live in the cluster: then a CONNECT
    /// asks [`PeerLink::claim_session`] first, and a session taken over by
    /// another node ends here.
    fn keeps_sessions(&self) -> bool {
        false
    }

    /// Makes the cluster's record of `client_id`'s session this node's:
    /// with `clean_start` it is discarded; otherwise the record another
    /// node (or an earlier run of this one) left (`Some`), which this node
    /// rebuilds and then asks the link to fill
    /// ([`PeerLink::session_moved_here`]). `None`: this node's own session,
    /// if any (`here`), is the current one. An error refuses the CONNECT
    /// (the cluster could not say whether a session exists).
    fn claim_session<'a>(
        &'a self,
        _client_id: &'a str,
        _clean_start: bool,
        _here: bool,
    ) -> cluster::BoxFuture<'a, Result<Option<cluster::SessionRecord>, String>> {
        Box::pin(async { Ok(None) })
    }

    /// The session claimed for `client_id` is rebuilt here: the link
    /// replays what it missed ([`Broker::deliver_to_session`]).
    fn session_moved_here(&self, _client_id: &str) {}

    /// This node ended `client_id`'s persistent session (clean start,
    /// expiry): its record goes.
    fn session_ended(&self, _client_id: &str) {}
}

pub(crate) struct Shared {
    tap: std::sync::OnceLock<Arc<dyn MessageTap>>,
    peer_link: std::sync::OnceLock<Arc<dyn PeerLink>>,
    device_service: std::sync::OnceLock<Arc<dyn service::DeviceService>>,
    /// Where events about devices go (connects, refusals, publishes,
    /// disconnects); logs nothing until one is installed.
    event_log: std::sync::OnceLock<roost_eventlog::EventLog>,
    /// Where durable changes go, once the gateway state is open.
    journal: std::sync::OnceLock<Arc<journal::Journal>>,
    registry: Registry,
    config: BrokerConfig,
    sessions: SessionTable,
    router: Router,
    metrics: Arc<Metrics>,
    next_connection_id: AtomicU64,
    live: Mutex<HashMap<u64, LiveConnection>>,
}

/// The gateway. Cheap to clone.
#[derive(Clone)]
pub struct Broker {
    shared: Arc<Shared>,
}

impl Shared {
    pub(crate) fn event_log(&self) -> &roost_eventlog::EventLog {
        self.event_log.get_or_init(roost_eventlog::EventLog::off)
    }
}

impl Broker {
    pub fn new(registry: Registry, config: BrokerConfig) -> Self {
        let mode = config.profile.match_mode();
        let shared = Shared {
            tap: std::sync::OnceLock::new(),
            peer_link: std::sync::OnceLock::new(),
            device_service: std::sync::OnceLock::new(),
            event_log: std::sync::OnceLock::new(),
            journal: std::sync::OnceLock::new(),
            registry,
            sessions: SessionTable::default(),
            router: Router::new(mode),
            metrics: Arc::default(),
            next_connection_id: AtomicU64::new(1),
            live: Mutex::new(HashMap::new()),
            config,
        };
        Self {
            shared: Arc::new(shared),
        }
    }

    pub fn metrics(&self) -> MetricsSnapshot {
        self.shared.metrics.snapshot(self.shared.sessions.len())
    }

    /// Applies registry changes to live connections until `shutdown`: a
    /// certificate that leaves ACTIVE has its connections closed at once, and
    /// any authorization change makes connections re-read their policies
    /// before their next action.
    pub async fn watch_registry(&self, mut shutdown: watch::Receiver<bool>) {
        let mut events = self.shared.registry.events();
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                event = events.recv() => match event {
                    Ok(RegistryEvent::CertificateStatusChanged { certificate_id, status }) => {
                        if status != Some(roost_registry::model::CertificateStatus::Active) {
                            self.kick_certificate(&certificate_id);
                        }
                    }
                    Ok(RegistryEvent::AuthorizationChanged | RegistryEvent::RulesChanged | RegistryEvent::DestinationsChanged) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                        // Events were lost: assume everything changed and re-check every live certificate.
                        tracing::warn!(missed, "registry events lagged; re-checking live connections");
                        self.shared.metrics.registry_events_lagged.fetch_add(missed, Ordering::Relaxed);
                        self.recheck_live_certificates().await;
                    }
                    // Another node's changes may have been missed.
                    Ok(RegistryEvent::Resynced) => self.recheck_live_certificates().await,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }

    fn kick_certificate(&self, certificate_id: &str) {
        let live = self.shared.live();
        for conn in live.values().filter(|c| c.certificate_id == certificate_id) {
            tracing::info!(client_id = conn.client_id.as_deref().unwrap_or(""), cert_id = %certificate_id, "closing connection: certificate no longer ACTIVE");
            conn.kick.send(Kick::CertificateRevoked);
        }
    }

    /// Closes the connections whose certificate's validity (plus the
    /// allowed clock skew) ended before `now_ms`.
    fn kick_expired_certificates(&self, now_ms: i64) {
        let skew = i64::try_from(self.shared.config.limits.certificate_clock_skew.as_millis())
            .unwrap_or(i64::MAX);
        let live = self.shared.live();
        for conn in live
            .values()
            .filter(|c| c.certificate_not_after.saturating_add(skew) < now_ms)
        {
            tracing::info!(client_id = conn.client_id.as_deref().unwrap_or(""), cert_id = %conn.certificate_id, "closing connection: certificate expired");
            conn.kick.send(Kick::CertificateExpired);
        }
    }

    async fn recheck_live_certificates(&self) {
        let ids: Vec<String> = {
            let live = self.shared.live();
            live.values().map(|c| c.certificate_id.clone()).collect()
        };
        for id in ids {
            let active = matches!(
                self.shared.registry.check_device_certificate(&id).await,
                Ok(Ok(()))
            );
            if !active {
                self.kick_certificate(&id);
            }
        }
    }

    /// Admits a device connection whose TLS handshake just completed: it is
    /// registered first, so that a revocation can close it from now on, and
    /// its certificate is checked after (a revocation between the two cannot
    /// be missed). Dropping the entry unregisters it.
    pub(crate) async fn admit_device(
        &self,
        certificate: &tls::DeviceCertificate,
    ) -> Result<LiveEntry, tls::DeviceRefusal> {
        let entry = self.shared.register_live(certificate);
        match Box::pin(
            self.shared
                .registry
                .check_device_certificate(certificate.id()),
        )
        .await
        {
            Ok(Ok(())) => Ok(entry),
            Ok(Err(refusal)) => Err(tls::DeviceRefusal::Certificate(refusal)),
            Err(e) => Err(tls::DeviceRefusal::Lookup(e)),
        }
    }

    /// Every `every`, until `shutdown`: closes connections whose certificate
    /// expired, and removes detached persistent sessions whose expiry has
    /// passed.
    pub async fn run_housekeeping(&self, every: Duration, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => {}
            }
            self.kick_expired_certificates(roost_registry::model::now_millis());
            for session in self.shared.sessions.expired(std::time::Instant::now()) {
                if self.shared.end_session(&session) {
                    self.shared
                        .metrics
                        .sessions_expired
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(client_id = %session.client_id, "persistent session expired");
                }
            }
        }
    }

    /// The retained message on `topic` and when it was set (Unix ms).
    pub fn retained(&self, topic: &str) -> Option<(Arc<Message>, i64)> {
        self.shared.router.retained_message(topic)
    }

    /// Every retained message with when it was set, in topic order.
    pub fn retained_messages(&self) -> Vec<(Arc<Message>, i64)> {
        self.shared.router.retained_topics()
    }

    /// Installs the tap every accepted message is offered to (once).
    pub fn set_tap(&self, tap: Arc<dyn MessageTap>) {
        let _ = self.shared.tap.set(tap);
    }

    /// Installs the event log (once, before the listeners start; later
    /// calls are ignored).
    pub fn set_event_log(&self, log: roost_eventlog::EventLog) {
        let _ = self.shared.event_log.set(log);
    }

    /// The event log: the control plane changes its levels through it, the
    /// rules engine and the jobs service write to it.
    pub fn event_log(&self) -> &roost_eventlog::EventLog {
        self.shared.event_log()
    }

    /// Closes every connection (server shutdown).
    pub fn close_all(&self) {
        let live = self.shared.live();
        for conn in live.values() {
            conn.kick.send(Kick::Shutdown);
        }
    }

    /// Publishes a message on behalf of the service (lifecycle events,
    /// wills) without waiting for the gateway state to be saved.
    /// Authorization is the caller's business.
    pub fn publish(&self, message: message::Message) -> usize {
        self.shared.route(message).matched
    }

    /// Joins this node to a cluster: every message accepted here from now
    /// on is also handed to `link`. Only the first link installed counts.
    pub fn set_peer_link(&self, link: Arc<dyn PeerLink>) {
        let _ = self.shared.peer_link.set(link);
    }

    /// Routes a message another node of the cluster accepted to this node's
    /// subscribers (and retains it here). It is neither offered to the
    /// rules engine nor forwarded again: the node that accepted it did both.
    /// Returns how many subscribers matched.
    pub fn deliver_from_peer(&self, message: message::Message) -> usize {
        self.shared.route_from(message, Origin::Peer).matched
    }

    /// Delivers a message the cluster chose this node for to one member of
    /// the shared subscription `shared_filter` (`$share/<group>/<filter>`);
    /// 0 when it has none here any more.
    pub fn deliver_shared_from_peer(
        &self,
        shared_filter: &str,
        message: message::Message,
    ) -> usize {
        self.shared
            .route_from(message, Origin::Shared(shared_filter))
            .matched
    }

    /// A client connected with `client_id` on another node at `at` (Unix
    /// ms, that node's clock): this node's connections that took the id
    /// earlier are closed as taken over, as a second connection on one node
    /// closes the first (AWS: DUPLICATE_CLIENTID). Returns how many.
    pub fn take_over_from_peer(&self, client_id: &str, at: i64) -> usize {
        let live = self.shared.live();
        let closed = self
            .shared
            .take_over(&live, client_id, |_, old| old.client_id_at <= at);
        let newer_here = live
            .values()
            .any(|c| c.client_id.as_deref() == Some(client_id) && c.client_id_at > at);
        drop(live);
        // Where sessions live in the cluster, the session goes with its
        // client: the other node claims it.
        if !newer_here && self.shared.keeps_sessions_in_cluster() {
            if let Some(session) = self.shared.sessions.get(client_id) {
                self.shared.remove_session(&session);
            }
        }
        closed
    }

    /// Runs the rules on a message the cluster's rules work queue handed
    /// this node (accepted by any node); completes when they are done.
    pub async fn run_rules(&self, message: message::Message) {
        if let Some(tap) = self.shared.tap.get() {
            tap.run(Arc::new(message)).await;
        }
    }

    /// When the client connected to this node now with `client_id` took it
    /// (Unix ms), if one is (GetThingConnectivityData). Walks the live
    /// table: for the control plane, not for every message.
    pub fn connected_since(&self, client_id: &str) -> Option<i64> {
        self.shared
            .live()
            .values()
            .filter(|c| c.client_id.as_deref() == Some(client_id))
            .map(|c| c.client_id_at)
            .max()
    }

    /// Puts back a retained message the cluster kept (set at `set_at`, Unix
    /// ms), when this node starts; routed to nobody.
    pub fn restore_retained_from_cluster(&self, message: message::Message, set_at: i64) {
        self.shared
            .router
            .restore_retained(Arc::new(message), set_at);
    }

    /// Every persistent session on this node as the cluster keeps it.
    pub fn persistent_sessions(&self) -> Vec<cluster::SessionRecord> {
        self.shared
            .sessions
            .all()
            .into_iter()
            .filter(|s| !s.lock().expiry.is_zero())
            .map(|s| cluster::SessionRecord::of(&s, self.shared.router.subscriptions_of(&s)))
            .collect()
    }

    /// Another node took `client_id`'s session: it ends here, without a
    /// word to the cluster, and its connection, if any, is closed.
    pub fn session_moved_away(&self, client_id: &str) {
        {
            let live = self.shared.live();
            self.shared.take_over(&live, client_id, |_, _| true);
        }
        if let Some(session) = self.shared.sessions.get(client_id) {
            self.shared.remove_session(&session);
        }
    }

    /// Routes a message replayed from the cluster's stream to the session
    /// of `client_id` alone (its subscriptions decide QoS and
    /// identifiers); how many subscribers matched (0 or 1).
    pub fn deliver_to_session(&self, client_id: &str, message: message::Message) -> usize {
        let Some(session) = self.shared.sessions.get(client_id) else {
            return 0;
        };
        let message = Arc::new(message);
        self.shared
            .router
            .route(
                &message,
                Reach::Session(session.id),
                &self.shared.config.limits,
                &self.shared.metrics,
                self.shared.journal(),
            )
            .matched
    }

    /// The shared subscriptions with a member on this node, and a receiver
    /// that changes when that list may have: a cluster node asks NATS to
    /// share exactly these between the nodes.
    pub fn shared_subscriptions(&self) -> (Vec<String>, watch::Receiver<()>) {
        let changes = self.shared.router.watch_shared();
        (self.shared.router.shared_filters(), changes)
    }

    /// How this node matches topic filters (`#` and its parent).
    pub fn match_mode(&self) -> roost_topic::MatchMode {
        self.shared.config.profile.match_mode()
    }
}

pub use message::Message;

/// Where a routed message was accepted.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin<'a> {
    /// On this node: by a device, the HTTPS or iot-data API, or a service.
    Local,
    /// On another node of the cluster.
    Peer,
    /// Anywhere in the cluster, and NATS chose this node for one shared
    /// subscription.
    Shared(&'a str),
}

impl Shared {
    /// The live table (a lock that survives a panic: `crate::sync`).
    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<u64, LiveConnection>> {
        use crate::sync::Locked;
        self.live.locked()
    }

    /// Closes, as taken over, the live connections with `client_id` that
    /// `older(conn_id, connection)` selects; returns how many.
    fn take_over(
        &self,
        live: &HashMap<u64, LiveConnection>,
        client_id: &str,
        older: impl Fn(u64, &LiveConnection) -> bool,
    ) -> usize {
        let mut closed = 0;
        for (&id, old) in live {
            if old.client_id.as_deref() == Some(client_id) && older(id, old) {
                self.metrics.takeovers.fetch_add(1, Ordering::Relaxed);
                old.kick.send(Kick::TakenOver);
                closed += 1;
            }
        }
        closed
    }

    /// Tells the connection `conn_id`, if it is still live, to close.
    pub(crate) fn kick(&self, conn_id: u64, kick: Kick) {
        if let Some(conn) = self.live().get(&conn_id) {
            conn.kick.send(kick);
        }
    }

    fn register_live(self: &Arc<Self>, certificate: &tls::DeviceCertificate) -> LiveEntry {
        let conn_id = self.next_connection_id.fetch_add(1, Ordering::Relaxed);
        let kick = Arc::new(KickSignal::default());
        self.live().insert(
            conn_id,
            LiveConnection {
                client_id: None,
                client_id_at: 0,
                certificate_id: certificate.id().to_string(),
                certificate_not_after: certificate.not_after,
                kick: kick.clone(),
            },
        );
        LiveEntry {
            shared: self.clone(),
            conn_id,
            kick,
        }
    }

    /// Routes an accepted message: how many subscribers matched, the
    /// journal ticket of the durable changes it made (queued for persistent
    /// sessions, retained), if any, which a QoS 1 answer waits for, and the
    /// sessions it left past their queue's mark.
    pub(crate) fn route(&self, message: message::Message) -> router::Routed {
        self.route_from(message, Origin::Local)
    }

    fn route_from(&self, message: message::Message, origin: Origin) -> router::Routed {
        let cluster = self.peer_link.get().is_some();
        let (counter, reach) = match origin {
            Origin::Local if cluster => (&self.metrics.messages_in, Reach::Plain),
            Origin::Local => (&self.metrics.messages_in, Reach::All),
            Origin::Peer => (&self.metrics.messages_from_peers, Reach::Plain),
            Origin::Shared(filter) => (&self.metrics.messages_from_peers, Reach::Shared(filter)),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let message = Arc::new(message);
        let mut forwarded = None;
        if origin == Origin::Local {
            if let Some(link) = self.peer_link.get() {
                forwarded = Some(link.forward(&message));
            }
        }
        if let Some(cluster::Forwarded::Storing(confirmation)) = forwarded {
            // Routed when it comes back from the cluster's stream, here as
            // on every node; its rules run on the one node that takes it
            // from the rules' work queue (Broker::run_rules).
            return router::Routed {
                forwarded: true,
                stored: Some(confirmation),
                ..Default::default()
            };
        }
        let journal = self.journal();
        let mut ticket = None;
        // A message is retained by every node once, as it arrives; a shared
        // delivery is the same message again.
        if message.retain && !matches!(origin, Origin::Shared(_)) {
            ticket = self.router.retain(&message, journal);
        }
        let mut routed =
            self.router
                .route(&message, reach, &self.config.limits, &self.metrics, journal);
        routed.ticket = routed.ticket.max(ticket);
        if origin != Origin::Local {
            return routed;
        }
        if let Some(tap) = self.tap.get() {
            tap.offer(&message);
        }
        routed.forwarded = forwarded.is_some();
        routed
    }

    /// Whether persistent sessions live in the cluster rather than here.
    fn keeps_sessions_in_cluster(&self) -> bool {
        self.peer_link.get().is_some_and(|l| l.keeps_sessions())
    }

    /// Whether retained messages live in the cluster rather than here.
    pub(crate) fn keeps_retained_in_cluster(&self) -> bool {
        self.peer_link.get().is_some_and(|l| l.keeps_retained())
    }

    /// Disconnects the client of `session` if its queue is still full: the
    /// slow-consumer policy (its persistent session, if any, keeps what was
    /// queued for its return).
    pub(crate) fn cut_slow_consumer(&self, session: &session::Session) {
        let owner = session.lock().owner;
        if let (Some(conn_id), false) = (owner, session.has_room()) {
            self.metrics
                .slow_consumers_disconnected
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(subscriber = %session.client_id, "disconnecting a slow consumer: its queue stayed full past the slow-consumer timeout");
            self.kick(conn_id, Kick::SlowConsumer);
        }
    }

    /// Ends a session that is still the table's for its client id: it
    /// leaves the table, the index and the gateway state. False when another
    /// session has its place already.
    pub(crate) fn end_session(&self, session: &Arc<session::Session>) -> bool {
        if !self.remove_session(session) {
            return false;
        }
        if let Some(link) = self.peer_link.get() {
            link.session_ended(&session.client_id);
        }
        true
    }

    /// Removes a session that is still the table's for its client id (see
    /// [`Shared::end_session`]), without telling the cluster.
    pub(crate) fn remove_session(&self, session: &Arc<session::Session>) -> bool {
        if !self.sessions.remove_if(session) {
            return false;
        }
        let queued = session.lock().queue.len() as u64;
        if queued > 0 {
            self.metrics
                .dropped_session_ended
                .fetch_add(queued, Ordering::Relaxed);
        }
        session.end(self.journal());
        self.router.remove_session(session);
        true
    }
}
