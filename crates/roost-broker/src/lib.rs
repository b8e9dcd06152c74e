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
mod connection;
mod events;
mod journal;
mod listener;
pub mod metrics;
pub mod persist;
mod publish;
mod router;
mod session;
pub mod tls;

pub use journal::StateUnavailable;
pub use listener::PlainPrincipal;
pub use metrics::{Field as MetricField, MetricsSnapshot};
pub use persist::{BrokerStore, PersistError, StateCounts, StateSync, StateWriter};
pub use publish::PublishRefusal;

use metrics::Metrics;
use roost_registry::{Registry, RegistryEvent};
use router::Router;
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
    /// Messages queued for one session (online backlog or offline).
    pub max_queued_messages: usize,
    /// Payload bytes queued for one session.
    pub max_queued_bytes: usize,
    /// Subscriptions one session may hold (AWS: 50).
    pub max_subscriptions: usize,
    /// Session expiry for persistent sessions when the client sets none
    /// (MQTT 3.1.1, or MQTT 5 without the property; AWS: 1 hour).
    pub default_session_expiry: Duration,
    /// The longest session expiry a client may ask for (AWS: 7 days).
    pub max_session_expiry: Duration,
    /// Keep-alive bounds in seconds (AWS: 30–1200; 0 means the maximum).
    pub min_keep_alive: u16,
    pub max_keep_alive: u16,
    /// The largest PUBLISH payload accepted (AWS: 128 KiB).
    pub max_payload_bytes: usize,
    /// Topic aliases a client may use towards the server (AWS: 8).
    pub topic_alias_maximum: u16,
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
            max_subscriptions: 50,
            default_session_expiry: Duration::from_secs(3600),
            max_session_expiry: Duration::from_secs(7 * 24 * 3600),
            min_keep_alive: 30,
            max_keep_alive: 1200,
            max_payload_bytes: roost_mqtt::AWS_MAX_PAYLOAD_BYTES,
            topic_alias_maximum: 8,
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
}

impl BrokerConfig {
    pub fn new(profile: Profile) -> Self {
        Self {
            profile,
            limits: Limits::for_profile(profile),
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
                _ => self.notify.notified().await,
            }
        }
    }
}

struct LiveConnection {
    client_id: String,
    certificate_id: String,
    kick: Arc<KickSignal>,
}

/// Receives every accepted message after it was routed (the rules engine).
/// `offer` runs on the publishing connection's task: it must not block, and
/// must not fail the publish.
pub trait MessageTap: Send + Sync {
    fn offer(&self, message: &Arc<router::Message>);
}

pub(crate) struct Shared {
    tap: std::sync::OnceLock<Arc<dyn MessageTap>>,
    /// Where durable changes go, once the gateway state is open.
    journal: std::sync::OnceLock<Arc<journal::Journal>>,
    registry: Registry,
    config: BrokerConfig,
    sessions: SessionTable,
    router: Router,
    metrics: Metrics,
    next_connection_id: AtomicU64,
    live: Mutex<HashMap<u64, LiveConnection>>,
}

/// The gateway. Cheap to clone.
#[derive(Clone)]
pub struct Broker {
    shared: Arc<Shared>,
}

impl Broker {
    pub fn new(registry: Registry, config: BrokerConfig) -> Self {
        let mode = match config.profile {
            Profile::Aws => roost_topic::MatchMode::Aws,
            Profile::Full => roost_topic::MatchMode::Mqtt,
        };
        let shared = Shared {
            tap: std::sync::OnceLock::new(),
            journal: std::sync::OnceLock::new(),
            registry,
            sessions: SessionTable::default(),
            router: Router::new(mode),
            metrics: Metrics::default(),
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
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }

    fn kick_certificate(&self, certificate_id: &str) {
        let live = self.shared.live.lock().expect("live connections lock");
        for conn in live.values().filter(|c| c.certificate_id == certificate_id) {
            tracing::info!(client_id = %conn.client_id, cert_id = %certificate_id, "closing connection: certificate no longer ACTIVE");
            conn.kick.send(Kick::CertificateRevoked);
        }
    }

    async fn recheck_live_certificates(&self) {
        let ids: Vec<String> = {
            let live = self.shared.live.lock().expect("live connections lock");
            live.values().map(|c| c.certificate_id.clone()).collect()
        };
        for id in ids {
            let active = matches!(
                self.shared.registry.describe_certificate(&id).await,
                Ok(c) if c.status == roost_registry::model::CertificateStatus::Active
            );
            if !active {
                self.kick_certificate(&id);
            }
        }
    }

    /// Removes detached persistent sessions whose expiry has passed, every
    /// `every`, until `shutdown`.
    pub async fn run_housekeeping(&self, every: Duration, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => {}
            }
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

    /// Closes every connection (server shutdown).
    pub fn close_all(&self) {
        let live = self.shared.live.lock().expect("live connections lock");
        for conn in live.values() {
            conn.kick.send(Kick::Shutdown);
        }
    }

    /// Serves MQTT over TLS on `listener` until `shutdown`; returns once its
    /// connections have ended too.
    pub async fn serve_tls(
        &self,
        listener: tokio::net::TcpListener,
        tls: Arc<rustls::ServerConfig>,
        shutdown: watch::Receiver<bool>,
    ) {
        listener::serve(
            self.clone(),
            listener,
            listener::Transport::Tls(tokio_rustls::TlsAcceptor::from(tls)),
            shutdown,
        )
        .await
    }

    /// Serves MQTT over plain TCP on `listener`: every connection acts under
    /// `principal` and its policies.
    pub async fn serve_plain(
        &self,
        listener: tokio::net::TcpListener,
        principal: PlainPrincipal,
        shutdown: watch::Receiver<bool>,
    ) {
        listener::serve(
            self.clone(),
            listener,
            listener::Transport::Plain(principal),
            shutdown,
        )
        .await
    }

    /// Publishes a message on behalf of the service (lifecycle events,
    /// wills) without waiting for the gateway state to be saved.
    /// Authorization is the caller's business.
    pub fn publish(&self, message: router::Message) -> usize {
        self.shared.route(message).0
    }
}

pub use router::Message;

impl Shared {
    /// Routes an accepted message: how many subscribers matched, and the
    /// journal ticket of the durable changes it made (queued for persistent
    /// sessions, retained), if any, which a QoS 1 answer waits for.
    pub(crate) fn route(&self, message: router::Message) -> (usize, Option<u64>) {
        self.metrics.messages_in.fetch_add(1, Ordering::Relaxed);
        let message = Arc::new(message);
        let journal = self.journal();
        let mut ticket = None;
        if message.retain {
            ticket = self.router.retain(&message, journal);
        }
        let (matched, queued) = self.router.route(
            &message,
            &self.sessions,
            &self.config.limits,
            &self.metrics,
            journal,
        );
        if let Some(tap) = self.tap.get() {
            tap.offer(&message);
        }
        (matched, ticket.max(queued))
    }

    /// Ends a session that is still the table's for its client id: it
    /// leaves the table, the index and the gateway state. False when another
    /// session has its place already.
    pub(crate) fn end_session(&self, session: &Arc<session::Session>) -> bool {
        if !self.sessions.remove_if(session) {
            return false;
        }
        session.end(self.journal());
        self.router.remove_subscriber(&session.client_id);
        true
    }
}
