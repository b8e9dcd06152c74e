//! The gateway under test: started in-process the way `roost serve` starts
//! it, on `127.0.0.1:0`, in a temporary data directory that goes away with
//! it. What `roost serve` adds around the gateway (the control plane, the
//! rules engine, notifications) is not started: these tests are the
//! broker's.

use crate::device::Device;
use crate::state::StateDb;
use crate::PATIENCE;
use roost_broker::{
    Broker, BrokerConfig, BrokerStore, DeviceListeners, DeviceTls, Limits, MetricsSnapshot,
    Profile, RunningGateway, StateSync,
};
use roost_listener::proxy::IpNet;
use roost_listener::ListenerStats;
use roost_registry::{Registry, Settings};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

type LimitsEdit = Box<dyn FnOnce(&mut Limits) + Send>;

/// How a [`Gateway`] is configured before it starts.
pub struct GatewayBuilder {
    profile: Profile,
    edits: Vec<LimitsEdit>,
    proxy_protocol_from: Vec<IpNet>,
}

impl GatewayBuilder {
    /// `aws` (the default) or `full`; the profile's limits apply, then the
    /// edits made here.
    pub fn profile(mut self, profile: Profile) -> Self {
        self.profile = profile;
        self
    }

    /// Any limit: `|l| l.connect_timeout = Duration::from_secs(60)`.
    pub fn limits(mut self, edit: impl FnOnce(&mut Limits) + Send + 'static) -> Self {
        self.edits.push(Box::new(edit));
        self
    }

    /// The mark of each session's queue (`--mqtt-max-queued-messages`).
    pub fn max_queued_messages(self, n: usize) -> Self {
        self.limits(move |l| l.max_queued_messages = n)
    }

    /// `--slow-consumer-timeout-secs`.
    pub fn slow_consumer_timeout(self, timeout: Duration) -> Self {
        self.limits(move |l| l.slow_consumer_timeout = timeout)
    }

    /// MQTT connections (and handshakes in progress) served at once.
    pub fn max_connections(self, n: usize) -> Self {
        self.limits(move |l| l.max_connections = n)
    }

    /// `--proxy-protocol-from`: connections from these networks (or
    /// addresses) must start with a PROXY protocol header.
    pub fn proxy_protocol_from(mut self, networks: &[&str]) -> Self {
        self.proxy_protocol_from.extend(
            networks
                .iter()
                .map(|n| roost_listener::proxy::parse_network(n).expect("a network")),
        );
        self
    }

    pub async fn start(self) -> Gateway {
        let dir = tempfile::tempdir().expect("creating the data directory");
        let mut config = BrokerConfig::new(self.profile);
        for edit in self.edits {
            edit(&mut config.limits);
        }
        config.proxy_protocol_from = self.proxy_protocol_from;
        Gateway::start_in(dir, config).await
    }
}

/// A running gateway. Dropping it stops it (its tasks see the shutdown
/// signal's sender gone) and removes its data directory.
pub struct Gateway {
    registry: Registry,
    broker: Broker,
    config: BrokerConfig,
    mqtt: SocketAddr,
    https: SocketAddr,
    mqtt_stats: Arc<ListenerStats>,
    https_stats: Arc<ListenerStats>,
    /// Dropped with the gateway, which stops every task.
    stop: watch::Sender<bool>,
    running: Option<RunningGateway>,
    // Last: removed after everything that uses it is dropped.
    dir: tempfile::TempDir,
}

impl Gateway {
    pub fn builder() -> GatewayBuilder {
        GatewayBuilder {
            profile: Profile::Aws,
            edits: Vec::new(),
            proxy_protocol_from: Vec::new(),
        }
    }

    /// A gateway with the `aws` profile's defaults.
    pub async fn start() -> Gateway {
        Self::builder().start().await
    }

    async fn start_in(dir: tempfile::TempDir, config: BrokerConfig) -> Gateway {
        let data_dir = dir.path();
        let registry = Registry::open(data_dir, Settings::default())
            .await
            .expect("opening the registry");
        let hosts = ["localhost".to_string(), "127.0.0.1".to_string()];
        let (cert, key) = registry
            .ca()
            .server_certificate(data_dir, &hosts)
            .expect("issuing the server certificate");
        let tls = DeviceTls::load(&cert, &key, config.limits.certificate_clock_skew)
            .expect("loading the TLS configuration");
        let bind = || TcpListener::bind("127.0.0.1:0");
        let (mqtt, https) = (
            bind().await.expect("binding"),
            bind().await.expect("binding"),
        );
        let (mqtt_addr, https_addr) = (mqtt.local_addr().unwrap(), https.local_addr().unwrap());
        let (mqtt_stats, https_stats) = (Arc::<ListenerStats>::default(), Arc::default());
        let broker = Broker::new(registry.clone(), config.clone());
        let store = BrokerStore::open(&data_dir.join(BrokerStore::FILE), StateSync::Normal)
            .await
            .expect("opening gateway.db");
        let (stop, shutdown) = watch::channel(false);
        let listeners = DeviceListeners {
            mqtt,
            mqtt_stats: mqtt_stats.clone(),
            https,
            https_stats: Arc::clone(&https_stats),
            https_max_connections: 64,
            mqtt_plain: None,
        };
        let running = broker
            .start_gateway(store, tls, listeners, shutdown)
            .await
            .expect("starting the gateway");
        Gateway {
            registry,
            broker,
            config,
            mqtt: mqtt_addr,
            https: https_addr,
            mqtt_stats,
            https_stats,
            stop,
            running: Some(running),
            dir,
        }
    }

    /// Stops the gateway as `roost serve` does on SIGTERM (connections
    /// closed, the last state committed) and starts it again on the same
    /// data directory, with new ports.
    pub async fn restart(mut self) -> Gateway {
        self.shut_down().await;
        let Gateway { dir, config, .. } = self;
        Self::start_in(dir, config).await
    }

    async fn shut_down(&mut self) {
        let _ = self.stop.send(true);
        if let Some(running) = self.running.take() {
            running.stop(PATIENCE).await;
        }
    }

    /// Where MQTT over mutual TLS is served.
    pub fn mqtt_addr(&self) -> SocketAddr {
        self.mqtt
    }

    /// Where device HTTPS is served.
    pub fn https_addr(&self) -> SocketAddr {
        self.https
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    pub fn limits(&self) -> &Limits {
        &self.config.limits
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The gateway's counters now (what `/metrics` exports as
    /// `roost_gateway_*`).
    pub fn metrics(&self) -> MetricsSnapshot {
        self.broker.metrics()
    }

    /// Waits (at most [`PATIENCE`]) until the counters satisfy `condition`,
    /// and returns them; panics with them if they never do.
    pub async fn wait_for_metrics(
        &self,
        condition: impl Fn(&MetricsSnapshot) -> bool,
    ) -> MetricsSnapshot {
        let mut last = self.metrics();
        let met = crate::eventually(|| {
            last = self.metrics();
            condition(&last)
        })
        .await;
        assert!(met, "the gateway's counters never got there: {last:#?}");
        last
    }

    /// The MQTT listener's counters (`roost_listener_*{listener="mqtt"}`).
    pub fn mqtt_listener(&self) -> &ListenerStats {
        &self.mqtt_stats
    }

    /// The device HTTPS listener's counters
    /// (`roost_listener_*{listener="https"}`).
    pub fn https_listener(&self) -> &ListenerStats {
        &self.https_stats
    }

    /// `gateway.db` as it is on disk.
    pub async fn state(&self) -> StateDb {
        StateDb::open(&self.dir.path().join(BrokerStore::FILE)).await
    }

    /// A device allowed everything ([`crate::allow_all`]).
    pub async fn device(&self, name: &str) -> Device {
        Device::create(&self.registry, name, &crate::allow_all()).await
    }

    /// A device whose certificate has `policy` (an IoT policy document)
    /// attached.
    pub async fn device_with_policy(&self, name: &str, policy: &serde_json::Value) -> Device {
        Device::create(&self.registry, name, policy).await
    }

    /// A certificate from Roost's CA that was never registered.
    pub fn unregistered_device(&self) -> Device {
        Device::unregistered(&self.registry)
    }

    /// UpdateCertificate: `ACTIVE`, `INACTIVE` or `REVOKED`.
    pub async fn set_certificate_status(&self, device: &Device, status: &str) {
        self.registry
            .update_certificate(&device.certificate_id, status)
            .await
            .expect("updating the certificate");
    }

    /// DetachPolicy of the device's policy from its certificate.
    pub async fn detach_policy(&self, device: &Device) {
        self.registry
            .detach_policy(&device.policy_name, &device.certificate_arn)
            .await
            .expect("detaching the policy");
    }
}
