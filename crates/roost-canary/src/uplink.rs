//! The one MQTT connection to the gateway: publishes the outbox's incidents
//! with QoS 1, oldest first, and removes each from the outbox only when its
//! PUBACK arrives. The outbox is the only truth: when the connection drops,
//! the MQTT client is discarded with whatever it had in flight, and a new
//! connection starts again from the oldest incident not yet acknowledged
//! (so the gateway may see an incident twice, never zero times).
//!
//! Reconnects back off exponentially with jitter; each failed attempt is
//! logged once, with its reason and the wait before the next.

use crate::config::AgentSettings;
use crate::outbox::Outbox;
use crate::status::Status;
use rumqttc::{AsyncClient, ConnectionError, Event, MqttOptions, Outgoing, Packet, QoS, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Mutex, Notify};

/// Incidents published and not yet acknowledged, at most.
const WINDOW: usize = 32;
/// The first wait after a failed connection.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// MQTT packets up to AWS IoT's message size.
const MAX_PACKET: usize = 128 * 1024;
/// ALPN protocol AWS IoT Core expects for MQTT on port 443.
const AWS_MQTT_ALPN: &[u8] = b"x-amzn-mqtt-ca";

/// Loads the TLS client configuration: the gateway's CA, the device
/// certificate and its key. Errors say which file is wrong.
pub fn tls_config(settings: &AgentSettings) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let cas: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&settings.root_ca)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| {
            anyhow::anyhow!(
                "{}: not a PEM CA certificate: {e}",
                settings.root_ca.display()
            )
        })?;
    if cas.is_empty() {
        anyhow::bail!("{}: holds no certificate", settings.root_ca.display());
    }
    for ca in cas {
        roots
            .add(ca)
            .map_err(|e| anyhow::anyhow!("{}: {e}", settings.root_ca.display()))?;
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&settings.cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| anyhow::anyhow!("{}: not a PEM certificate: {e}", settings.cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("{}: holds no certificate", settings.cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(&settings.key)
        .map_err(|e| anyhow::anyhow!("{}: not a PEM private key: {e}", settings.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| {
            anyhow::anyhow!(
                "{}: does not fit the certificate: {e}",
                settings.key.display()
            )
        })?;
    if settings.port == 443 {
        config.alpn_protocols = vec![AWS_MQTT_ALPN.to_vec()];
    }
    Ok(config)
}

/// The uplink's view of the outbox: shared with the pipeline that writes it.
pub type SharedOutbox = Arc<Mutex<Outbox>>;

pub struct Uplink {
    pub settings: AgentSettings,
    pub tls: Arc<rustls::ClientConfig>,
    pub outbox: SharedOutbox,
    /// Woken when the pipeline has committed new incidents.
    pub committed: Arc<Notify>,
    pub status: Arc<Status>,
    pub max_publish_per_sec: u32,
}

/// Why a connection ended.
enum Ended {
    Shutdown,
    Failed(String),
}

impl Uplink {
    /// Runs until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = roost_listener::Backoff::new(FIRST_BACKOFF, self.settings.max_backoff);
        let mut pacer = Pacer::new(self.max_publish_per_sec);
        loop {
            let started = Instant::now();
            match self.connection(&mut shutdown, &mut pacer).await {
                Ended::Shutdown => return,
                Ended::Failed(reason) => {
                    self.status.disconnected(&reason);
                    // A connection that stood for a while starts the
                    // backoff afresh.
                    if started.elapsed() > self.settings.max_backoff {
                        backoff.reset();
                    }
                    let wait = jitter(backoff.next_wait());
                    tracing::warn!(
                        endpoint = %self.settings.endpoint,
                        port = self.settings.port,
                        reason = %reason,
                        retry_in_ms = wait.as_millis() as u64,
                        "the gateway connection failed"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.changed() => return,
                    }
                }
            }
        }
    }

    async fn connection(&self, shutdown: &mut watch::Receiver<bool>, pacer: &mut Pacer) -> Ended {
        let s = &self.settings;
        let mut options = MqttOptions::new(&s.client_id, &s.endpoint, s.port);
        options
            .set_keep_alive(s.keep_alive)
            .set_clean_session(true)
            .set_max_packet_size(MAX_PACKET, MAX_PACKET)
            .set_inflight(WINDOW as u16)
            .set_transport(Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(self.tls.clone()),
            ));
        let (client, mut events) = AsyncClient::new(options, WINDOW * 2);
        let mut connected = false;
        // Incidents handed to the client whose packet id is not known yet,
        // in the order the client sends them; then those awaiting a PUBACK.
        let mut unassigned: VecDeque<(i64, u64)> = VecDeque::new();
        let mut in_flight: HashMap<u16, (i64, u64)> = HashMap::new();
        let mut cursor = 0i64;
        let mut acked: Vec<i64> = Vec::new();
        // Nothing after `cursor` in the outbox: no query until the pipeline
        // says it committed more (every PINGRESP and PUBACK would ask again).
        let mut drained = false;
        loop {
            // Fill the window from the outbox, at the allowed pace.
            let mut pace_wait = None;
            if connected {
                if let Err(e) = self.remove(&mut acked).await {
                    return Ended::Failed(e);
                }
                let room = WINDOW.saturating_sub(unassigned.len() + in_flight.len());
                if room > 0 && !drained {
                    match self.outbox.lock().await.next(cursor, room as u32).await {
                        Err(e) => return Ended::Failed(e.to_string()),
                        Ok(pending) => {
                            drained = pending.len() < room;
                            for p in pending {
                                if let Err(wait) = pacer.take() {
                                    pace_wait = Some(wait);
                                    drained = false;
                                    break;
                                }
                                if client
                                    .try_publish(&s.topic, QoS::AtLeastOnce, false, p.payload)
                                    .is_err()
                                {
                                    drained = false;
                                    break;
                                }
                                unassigned.push_back((p.seq, p.attempts));
                                cursor = p.seq;
                                self.status.published();
                            }
                        }
                    }
                }
            }
            let event = tokio::select! {
                event = events.poll() => event,
                _ = self.committed.notified(), if connected => {
                    drained = false;
                    continue;
                }
                _ = sleep_for(pace_wait), if pace_wait.is_some() => continue,
                _ = shutdown.changed() => {
                    let _ = client.try_disconnect();
                    let _ = tokio::time::timeout(Duration::from_secs(2), self.remove(&mut acked)).await;
                    return Ended::Shutdown;
                }
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    connected = true;
                    self.status.connected();
                    tracing::info!(endpoint = %s.endpoint, client_id = %s.client_id, topic = %s.topic, "connected to the gateway");
                }
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                    if let Some(incident) = unassigned.pop_front() {
                        in_flight.insert(pkid, incident);
                    }
                }
                Ok(Event::Incoming(Packet::PubAck(ack))) => {
                    if let Some((seq, attempts)) = in_flight.remove(&ack.pkid) {
                        acked.push(seq);
                        self.status.acknowledged(attempts);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    // What was acknowledged before the drop is removed; the
                    // rest is sent again on the next connection.
                    let _ = self.remove(&mut acked).await;
                    return Ended::Failed(describe(&e));
                }
            }
        }
    }

    async fn remove(&self, acked: &mut Vec<i64>) -> Result<(), String> {
        if acked.is_empty() {
            return Ok(());
        }
        let mut outbox = self.outbox.lock().await;
        outbox.remove(acked).await.map_err(|e| e.to_string())?;
        self.status.outbox(outbox.depth());
        acked.clear();
        Ok(())
    }
}

/// A refusal in words an operator can act on.
fn describe(e: &ConnectionError) -> String {
    match e {
        ConnectionError::ConnectionRefused(code) => {
            format!("the gateway refused the connection ({code:?}): check the certificate is ACTIVE, attached to the thing, and its policy allows iot:Connect for this client id")
        }
        ConnectionError::Tls(e) => format!("TLS: {e}"),
        ConnectionError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the gateway closed the connection (a certificate it does not accept, or a client id its policy does not allow)".into()
        }
        other => other.to_string(),
    }
}

/// Half the wait plus a random share of the other half: clients that lost
/// the gateway together do not come back together.
fn jitter(wait: Duration) -> Duration {
    let half = wait / 2;
    half + half.mul_f64(fastrand::f64())
}

async fn sleep_for(wait: Option<Duration>) {
    tokio::time::sleep(wait.unwrap_or_default()).await
}

/// A token bucket: at most `rate` publishes per second, bursts of one
/// second's worth.
struct Pacer {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Pacer {
    fn new(rate: u32) -> Self {
        let rate = f64::from(rate.max(1));
        Self {
            rate,
            tokens: rate,
            last: Instant::now(),
        }
    }

    /// Takes a token, or says how long until one is there.
    fn take(&mut self) -> Result<(), Duration> {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.rate);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pacer_allows_one_seconds_worth_then_waits() {
        let mut pacer = Pacer::new(10);
        for _ in 0..10 {
            assert!(pacer.take().is_ok());
        }
        let wait = pacer.take().unwrap_err();
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
    }

    #[test]
    fn jitter_stays_within_half_and_whole() {
        for _ in 0..100 {
            let j = jitter(Duration::from_secs(8));
            assert!(j >= Duration::from_secs(4) && j <= Duration::from_secs(8));
        }
    }
}
