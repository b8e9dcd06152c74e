//! The device gateway as `roost serve` runs it: the gateway state read
//! back, then the registry watcher, the housekeeping sweep and the device
//! listeners (MQTT over TLS, device HTTPS, plain MQTT if asked for)
//! started; at the end, every connection closed and the last changes
//! committed. Kept here, in one place, so that the binary and the
//! in-process tests (`roost-testkit`) run the very same gateway.
//!
//! Never: bind a socket (callers pass bound listeners, so tests bind
//! `127.0.0.1:0`) or decide when to stop (the caller's shutdown signal does).

use crate::tls::{self, TlsSetupError};
use crate::{Broker, BrokerStore, PersistError, PlainPrincipal, StateCounts, StateWriter};
use roost_listener::ListenerStats;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How often connections whose certificate expired are closed and expired
/// persistent sessions removed.
pub const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(5);

/// The TLS configurations of the device listeners: Roost's server
/// certificate, a client certificate required, each listener's ALPN.
pub struct DeviceTls {
    pub mqtt: Arc<rustls::ServerConfig>,
    pub https: Arc<rustls::ServerConfig>,
}

impl DeviceTls {
    /// Both configurations from the server certificate chain and key (PEM
    /// files), accepting client certificates valid now within `clock_skew`.
    pub fn load(
        cert_chain: &Path,
        key: &Path,
        clock_skew: Duration,
    ) -> Result<Self, TlsSetupError> {
        Ok(Self {
            mqtt: tls::server_config(cert_chain, key, tls::MQTT_ALPN, clock_skew)?,
            https: tls::server_config(cert_chain, key, tls::HTTP_ALPN, clock_skew)?,
        })
    }
}

/// The device listeners, already bound, and the counters each one keeps.
pub struct DeviceListeners {
    pub mqtt: TcpListener,
    pub mqtt_stats: Arc<ListenerStats>,
    pub https: TcpListener,
    pub https_stats: Arc<ListenerStats>,
    /// Device HTTPS connections open at once (the MQTT cap is in the
    /// broker's limits).
    pub https_max_connections: usize,
    /// Plain MQTT, every connection acting under one principal (development
    /// and conformance testing only).
    pub mqtt_plain: Option<(TcpListener, PlainPrincipal, Arc<ListenerStats>)>,
}

/// A started gateway: its tasks and the writer of its state.
pub struct RunningGateway {
    broker: Broker,
    restored: StateCounts,
    tasks: JoinSet<()>,
    state_writer: StateWriter,
}

impl Broker {
    /// Starts the gateway: `store` is read back (before any listener
    /// serves, as [`Broker::open_state`] requires), then the registry
    /// watcher, the housekeeping sweep and every listener run until
    /// `shutdown` turns true. Install a [`crate::MessageTap`] before.
    pub async fn start_gateway(
        &self,
        store: BrokerStore,
        tls: DeviceTls,
        listeners: DeviceListeners,
        shutdown: watch::Receiver<bool>,
    ) -> Result<RunningGateway, PersistError> {
        let (restored, state_writer) = self.open_state(store).await?;
        tracing::info!(
            sessions = restored.sessions,
            messages = restored.messages,
            retained = restored.retained,
            "gateway state restored"
        );
        let mut tasks = JoinSet::new();
        let (b, s) = (self.clone(), shutdown.clone());
        tasks.spawn(async move { b.watch_registry(s).await });
        let (b, s) = (self.clone(), shutdown.clone());
        tasks.spawn(async move { b.run_housekeeping(HOUSEKEEPING_INTERVAL, s).await });
        let DeviceListeners {
            mqtt,
            mqtt_stats,
            https,
            https_stats,
            https_max_connections,
            mqtt_plain,
        } = listeners;
        let (b, s) = (self.clone(), shutdown.clone());
        tasks.spawn(async move { b.serve_tls(mqtt, tls.mqtt, mqtt_stats, s).await });
        let (b, s) = (self.clone(), shutdown.clone());
        tasks.spawn(async move {
            b.serve_https(https, tls.https, https_max_connections, https_stats, s)
                .await
        });
        if let Some((listener, principal, stats)) = mqtt_plain {
            let (b, s) = (self.clone(), shutdown);
            tasks.spawn(async move { b.serve_plain(listener, principal, stats, s).await });
        }
        Ok(RunningGateway {
            broker: self.clone(),
            restored,
            tasks,
            state_writer,
        })
    }
}

impl RunningGateway {
    /// How much state was read back at start.
    pub fn restored(&self) -> StateCounts {
        self.restored
    }

    /// Once the shutdown signal is sent: closes every connection, gives
    /// them at most `grace` to say goodbye (MQTT 5 DISCONNECT) and end,
    /// then commits their last changes (sessions detached).
    pub async fn stop(mut self, grace: Duration) {
        self.broker.close_all();
        let _ = tokio::time::timeout(grace, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        self.state_writer.finish().await;
        tracing::info!("gateway state saved");
    }
}
