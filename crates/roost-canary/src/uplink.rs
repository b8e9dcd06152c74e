//! The one MQTT connection to the gateway: publishes the outbox's incidents
//! with QoS 1, oldest first, and removes each from the outbox only when its
//! PUBACK arrives. The outbox is the only truth: when the connection drops,
//! the MQTT client is discarded with whatever it had in flight, and a new
//! connection starts again from the oldest incident not yet acknowledged
//! (so the gateway may see an incident twice, never zero times).
//!
//! Reconnects back off exponentially with jitter; each failed attempt is
//! logged once, with its reason and the wait before the next.
//!
//! The jobs agent shares the connection through a [`JobsLink`]: the uplink
//! subscribes to the thing's jobs topics on each connection, hands it what
//! arrives there, publishes its requests, and on its demand tries a new
//! certificate ([`LinkRequest::Switch`]), going back to the one it had if
//! the gateway does not take the new one before a deadline.

use crate::config::AgentSettings;
use crate::jobs::protocol::Topics;
use crate::outbox::Outbox;
use crate::status::Status;
use rumqttc::{AsyncClient, ConnectionError, Event, MqttOptions, Outgoing, Packet, QoS, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch, Mutex, Notify};

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
    for ca in crate::jobs::rotation::read_cas(&settings.root_ca).map_err(anyhow::Error::msg)? {
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

/// What the uplink tells the jobs agent.
#[derive(Debug)]
pub enum LinkEvent {
    /// Connected; `jobs` is false when the gateway refused the jobs
    /// subscriptions (the thing's policy does not allow them).
    Ready { jobs: bool },
    /// A message on one of the thing's jobs topics.
    Message { topic: String, payload: Vec<u8> },
    /// The connection ended.
    Down,
}

/// What the jobs agent asks of the uplink.
#[derive(Debug)]
pub enum LinkRequest {
    /// Publish a jobs request (QoS 1). Dropped when there is no connection:
    /// the agent asks again when it hears `Ready`.
    Publish { topic: String, payload: Vec<u8> },
    /// Reconnect with `tls`. `done` gets `Ok` once the gateway accepted the
    /// connection and its subscriptions, or the last reason at `deadline`,
    /// when the uplink goes back to the configuration it had.
    Switch {
        tls: Arc<rustls::ClientConfig>,
        deadline: Duration,
        done: oneshot::Sender<Result<(), String>>,
    },
}

/// The uplink's side of its link with the jobs agent.
pub struct JobsLink {
    pub topics: Topics,
    pub events: mpsc::Sender<LinkEvent>,
    pub requests: mpsc::Receiver<LinkRequest>,
}

/// A new certificate being tried.
struct Trial {
    tls: Arc<rustls::ClientConfig>,
    until: Instant,
    done: oneshot::Sender<Result<(), String>>,
}

/// The configuration in use and the one being tried, if any.
struct Credentials {
    current: Arc<rustls::ClientConfig>,
    trial: Option<Trial>,
}

impl Credentials {
    fn for_next_connection(&self) -> Arc<rustls::ClientConfig> {
        self.trial
            .as_ref()
            .map_or(&self.current, |t| &t.tls)
            .clone()
    }

    /// The connection stands with the configuration it was made with.
    fn confirm(&mut self) {
        if let Some(trial) = self.trial.take() {
            self.current = trial.tls;
            let _ = trial.done.send(Ok(()));
        }
    }

    /// A connection failed: a trial past its deadline ends, and the
    /// configuration in use stays. True when one ended.
    fn failed(&mut self, reason: &str) -> bool {
        match self.trial.take_if(|t| Instant::now() >= t.until) {
            Some(trial) => {
                let _ = trial.done.send(Err(reason.to_string()));
                true
            }
            None => false,
        }
    }
}

pub struct Uplink {
    pub settings: AgentSettings,
    pub tls: Arc<rustls::ClientConfig>,
    pub outbox: SharedOutbox,
    /// Woken when the pipeline has committed new incidents.
    pub committed: Arc<Notify>,
    pub status: Arc<Status>,
    pub max_publish_per_sec: u32,
    /// The jobs agent's link, when jobs are enabled.
    pub jobs: Option<JobsLink>,
}

/// Why a connection ended.
enum Ended {
    Shutdown,
    Failed(String),
    /// The jobs agent asked for a new certificate to be tried.
    Switch(Trial),
}

/// Where a connection's jobs subscription got to.
enum Subscription {
    NotAsked,
    Awaiting,
    Answered,
}

/// What a connection has sent and waits for, in the order the client sends
/// it: an incident (outbox sequence, attempts it counts) or a jobs request.
type Sent = Option<(i64, u64)>;

impl Uplink {
    /// Runs until `shutdown` turns true.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = roost_listener::Backoff::new(FIRST_BACKOFF, self.settings.max_backoff);
        let mut pacer = Pacer::new(self.max_publish_per_sec);
        let mut credentials = Credentials {
            current: self.tls.clone(),
            trial: None,
        };
        let mut jobs = self.jobs.take();
        // Connections dropped while their jobs SUBSCRIBE waited for its
        // SUBACK, in a row: a gateway that disconnects on a subscription the
        // policy does not allow (as AWS IoT Core is documented to have done)
        // would otherwise take every connection down with it.
        let mut dropped_subscribing = 0u32;
        let mut subscribe_jobs = true;
        loop {
            let started = Instant::now();
            let mut subscription = Subscription::NotAsked;
            let ended = self
                .connection(
                    &mut shutdown,
                    &mut pacer,
                    &mut credentials,
                    jobs.as_mut(),
                    (subscribe_jobs, &mut subscription),
                )
                .await;
            match subscription {
                Subscription::Answered => dropped_subscribing = 0,
                Subscription::Awaiting => {
                    dropped_subscribing += 1;
                    if dropped_subscribing >= 2 && subscribe_jobs {
                        subscribe_jobs = false;
                        tracing::warn!("the gateway closed the connection twice while the jobs subscription waited for its answer: jobs are off until the canary restarts (check that the thing's policy allows $aws/things/<thing>/jobs/*, or set [jobs] enabled = false)");
                    }
                }
                Subscription::NotAsked => {}
            }
            if let Some(link) = &jobs {
                let _ = link.events.try_send(LinkEvent::Down);
            }
            match ended {
                Ended::Shutdown => return,
                Ended::Switch(trial) => {
                    if let Some(old) = credentials.trial.replace(trial) {
                        let _ = old.done.send(Err("superseded by another switch".into()));
                    }
                    backoff.reset();
                }
                Ended::Failed(reason) => {
                    self.status.disconnected(&reason);
                    if credentials.failed(&reason) {
                        tracing::warn!(reason = %reason, "the gateway did not take the new certificate in time; back on the previous one");
                        backoff.reset();
                        continue;
                    }
                    // A connection that stood for a while starts the
                    // backoff afresh.
                    if started.elapsed() > self.settings.max_backoff {
                        backoff.reset();
                    }
                    let mut wait = jitter(backoff.next_wait());
                    if let Some(trial) = &credentials.trial {
                        wait = wait.min(trial.until.saturating_duration_since(Instant::now()));
                    }
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

    async fn connection(
        &self,
        shutdown: &mut watch::Receiver<bool>,
        pacer: &mut Pacer,
        credentials: &mut Credentials,
        mut jobs: Option<&mut JobsLink>,
        (subscribe_jobs, subscription): (bool, &mut Subscription),
    ) -> Ended {
        let s = &self.settings;
        let mut options = MqttOptions::new(&s.client_id, &s.endpoint, s.port);
        options
            .set_keep_alive(s.keep_alive)
            .set_clean_session(true)
            .set_max_packet_size(MAX_PACKET, MAX_PACKET)
            .set_inflight(WINDOW as u16)
            .set_transport(Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(credentials.for_next_connection()),
            ));
        let (client, mut events) = AsyncClient::new(options, WINDOW * 2);
        let mut connected = false;
        // Incidents handed to the client whose packet id is not known yet,
        // in the order the client sends them; then those awaiting a PUBACK.
        let mut unassigned: VecDeque<Sent> = VecDeque::new();
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
                                unassigned.push_back(Some((p.seq, p.attempts)));
                                cursor = p.seq;
                                self.status.published();
                            }
                        }
                    }
                }
            }
            let event = tokio::select! {
                event = events.poll() => event,
                request = next_request(&mut jobs) => {
                    match request {
                        Some(LinkRequest::Publish { topic, payload }) => {
                            if connected
                                && client.try_publish(topic, QoS::AtLeastOnce, false, payload).is_ok()
                            {
                                unassigned.push_back(None);
                            }
                        }
                        Some(LinkRequest::Switch { tls, deadline, done }) => {
                            let _ = client.try_disconnect();
                            let _ = self.remove(&mut acked).await;
                            tracing::info!(deadline_secs = deadline.as_secs(), "reconnecting with the new certificate");
                            return Ended::Switch(Trial { tls, until: Instant::now() + deadline, done });
                        }
                        // The agent is gone: jobs stop, incidents go on.
                        None => jobs = None,
                    }
                    continue;
                }
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
                    match &jobs {
                        Some(link) if !subscribe_jobs => {
                            credentials.confirm();
                            let _ = link.events.try_send(LinkEvent::Ready { jobs: false });
                        }
                        Some(link) => {
                            let filters = link
                                .topics
                                .subscriptions()
                                .map(|path| rumqttc::SubscribeFilter::new(path, QoS::AtLeastOnce));
                            if let Err(e) = client.try_subscribe_many(filters) {
                                return Ended::Failed(format!(
                                    "subscribing to the jobs topics: {e}"
                                ));
                            }
                            *subscription = Subscription::Awaiting;
                        }
                        None => credentials.confirm(),
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    *subscription = Subscription::Answered;
                    let granted = ack
                        .return_codes
                        .iter()
                        .all(|c| matches!(c, rumqttc::SubscribeReasonCode::Success(_)));
                    if granted {
                        credentials.confirm();
                    } else {
                        tracing::warn!(thing = %s.thing, "the gateway refused the jobs subscriptions (the thing's policy must allow iot:Subscribe and iot:Receive on $aws/things/<thing>/jobs/*): jobs are not run on this connection");
                        if credentials.trial.is_some() {
                            return Ended::Failed(
                                "the new certificate may not subscribe to the thing's jobs topics"
                                    .into(),
                            );
                        }
                    }
                    if let Some(link) = &jobs {
                        let _ = link.events.try_send(LinkEvent::Ready { jobs: granted });
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    if let Some(link) = &jobs {
                        let message = LinkEvent::Message {
                            topic: publish.topic,
                            payload: publish.payload.to_vec(),
                        };
                        if link.events.try_send(message).is_err() {
                            self.status.jobs_message_dropped();
                        }
                    }
                }
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                    if let Some(Some(incident)) = unassigned.pop_front() {
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

/// The jobs agent's next request; pending forever without an agent.
async fn next_request(jobs: &mut Option<&mut JobsLink>) -> Option<LinkRequest> {
    match jobs {
        Some(link) => link.requests.recv().await,
        None => std::future::pending().await,
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

    /// A gateway that answers CONNACK and then closes the connection at
    /// any SUBSCRIBE, as AWS IoT Core is documented (in older pages) to do
    /// for a filter the policy does not allow: after two such drops the
    /// canary stops subscribing to its jobs topics and stays connected,
    /// telling the jobs agent that jobs are off.
    #[tokio::test]
    async fn a_gateway_that_drops_the_jobs_subscription_turns_jobs_off_not_the_connection() {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let issue = |names: Vec<String>| {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(names)
                .unwrap()
                .signed_by(&key, &issuer)
                .unwrap();
            (cert, key)
        };
        let (server_cert, server_key) = issue(vec!["localhost".into()]);
        let (client_cert, client_key) = issue(vec![]);
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.path().join("device.crt"), client_cert.pem()).unwrap();
        std::fs::write(dir.path().join("device.key"), client_key.serialize_pem()).unwrap();
        let server_tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![server_cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (seen_tx, mut seen) = mpsc::unbounded_channel::<&'static str>();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let (acceptor, seen_tx) = (acceptor.clone(), seen_tx.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut buf = vec![0u8; 4096];
                    // CONNECT, then CONNACK (session not present, accepted).
                    if tls.read(&mut buf).await.unwrap_or(0) == 0 {
                        return;
                    }
                    tls.write_all(&[0x20, 0x02, 0x00, 0x00]).await.unwrap();
                    loop {
                        let n = tls.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        match buf[0] >> 4 {
                            8 => {
                                let _ = seen_tx.send("subscribe");
                                return; // dropped, no SUBACK
                            }
                            12 => {
                                let _ = seen_tx.send("ping");
                                tls.write_all(&[0xD0, 0x00]).await.unwrap();
                            }
                            _ => {}
                        }
                    }
                });
            }
        });

        let settings = AgentSettings {
            endpoint: "localhost".into(),
            port,
            root_ca: dir.path().join("ca.pem"),
            cert: dir.path().join("device.crt"),
            key: dir.path().join("device.key"),
            client_id: "canary-1".into(),
            thing: "canary-1".into(),
            topic: "o/canary-1/audit".into(),
            keep_alive: Duration::from_secs(5),
            max_backoff: Duration::from_secs(1),
        };
        let outbox = Outbox::open(&dir.path().join("outbox.db"), 1 << 20, "canary-1")
            .await
            .unwrap();
        let (event_tx, mut events) = mpsc::channel(64);
        let (_request_tx, request_rx) = mpsc::channel(16);
        let uplink = Uplink {
            tls: Arc::new(tls_config(&settings).unwrap()),
            settings,
            outbox: Arc::new(Mutex::new(outbox)),
            committed: Arc::new(Notify::new()),
            status: Arc::new(Status::default()),
            max_publish_per_sec: 10,
            jobs: Some(JobsLink {
                topics: Topics::new("canary-1"),
                events: event_tx,
                requests: request_rx,
            }),
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(uplink.run(stop_rx));
        let ready = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                match events.recv().await {
                    Some(LinkEvent::Ready { jobs }) => return jobs,
                    Some(_) => {}
                    None => panic!("the uplink ended"),
                }
            }
        })
        .await
        .expect("the canary never settled on a connection");
        assert!(!ready, "jobs must be off on the connection that stays");
        let mut subscribes = 0;
        while let Ok(what) = seen.try_recv() {
            subscribes += usize::from(what == "subscribe");
        }
        assert_eq!(subscribes, 2, "two dropped subscriptions, then none");
        let _ = stop_tx.send(true);
        let _ = task.await;
    }

    #[test]
    fn jitter_stays_within_half_and_whole() {
        for _ in 0..100 {
            let j = jitter(Duration::from_secs(8));
            assert!(j >= Duration::from_secs(4) && j <= Duration::from_secs(8));
        }
    }
}
