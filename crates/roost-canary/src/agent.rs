//! The running canary: services → aggregation → outbox → uplink, in one
//! process with one MQTT connection and one state directory.
//!
//! The pipeline task owns the aggregator: it takes attempts in batches,
//! turns them into incidents, and commits incidents and open windows to the
//! outbox in one transaction (a group commit: attempts that arrive while a
//! commit runs wait in the bounded queue and go in the next). Only then is
//! the uplink woken. A failed commit is retried; attempts wait meanwhile.

use crate::aggregate::{Aggregator, Limits};
use crate::config::{AgentSettings, Config};
use crate::incident::Incident;
use crate::jobs;
use crate::outbox::Outbox;
use crate::services::{self, Recorded, Recorder, ServiceStats, Shared};
use crate::status::{self, Status};
use crate::uplink::{self, SharedOutbox, Uplink};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch, Mutex, Notify};

/// Attempts waiting for the pipeline, at most; services wait when it is
/// full (the attacker's connection slows, nothing is lost).
const ATTEMPT_QUEUE: usize = 4096;
/// Attempts taken into one commit, at most.
const BATCH: usize = 512;
/// How often windows are checked for their end.
const TICK: Duration = Duration::from_millis(250);
/// Messages from the uplink to the jobs agent, and requests back, waiting
/// at most (jobs traffic is a few messages per job; overflow is counted in
/// the status and the agent asks again).
const JOBS_EVENTS: usize = 64;
const JOBS_REQUESTS: usize = 16;

/// A rotation the last run did not finish: the files go back to a pair
/// that connects (the previous one, unless the new one had connected), and
/// the job's report is settled, before anything connects.
fn recover_rotation(store: &jobs::state::Store, settings: &AgentSettings) -> anyhow::Result<()> {
    let Some(mut job) = store.load()? else {
        return Ok(());
    };
    if let Some(journal) = job.rotation.clone() {
        let paths = jobs::rotation::PairPaths {
            cert: settings.cert.clone(),
            key: settings.key.clone(),
        };
        match jobs::rotation::recover(&paths, &journal)? {
            jobs::rotation::Recovered::Kept => {
                tracing::info!(job = %job.job_id, certificate = %journal.certificate_id, "the last run connected with the new certificate; keeping it");
            }
            jobs::rotation::Recovered::RolledBack => {
                tracing::warn!(job = %job.job_id, certificate = %journal.previous_certificate_id, "a rotation was interrupted before the new certificate connected; back on the previous one");
                job.rotation = None;
            }
            jobs::rotation::Recovered::Unresolved(why) => {
                tracing::error!(job = %job.job_id, "a rotation was interrupted and cannot be undone: {why}");
                job.rotation = None;
            }
        }
    }
    job.settle_after_restart();
    store.save(&job)?;
    Ok(())
}

/// Runs the canary until `shutdown` completes. `ready` receives the
/// services' bound addresses once they listen.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()>,
    ready: impl FnOnce(Vec<(String, SocketAddr)>),
) -> anyhow::Result<()> {
    let settings = config.agent_settings().map_err(anyhow::Error::msg)?;
    let state_dir = config.state_dir.clone();
    create_private_dir(&state_dir)?;
    let _lock = crate::lock::acquire(&state_dir)?;
    let job_store = jobs::state::Store::new(&state_dir);
    recover_rotation(&job_store, &settings)?;
    let tls = Arc::new(uplink::tls_config(&settings)?);
    let outbox = Outbox::open(
        &state_dir.join(Outbox::FILE),
        config.outbox.max_bytes,
        &settings.thing,
    )
    .await?;
    let mut aggregator = Aggregator::new(Limits {
        window: Duration::from_secs(config.reporting.window_secs),
        max_sources: config.reporting.max_sources,
        max_credentials: config.reporting.max_credentials,
    });
    let restored = outbox.open_windows().await?;
    if !restored.is_empty() {
        tracing::info!(
            windows = restored.len(),
            "took back the open windows of the last run"
        );
    }
    aggregator.restore(restored, Instant::now());
    let status = Arc::new(Status::default());
    status.outbox(outbox.depth());
    let outbox: SharedOutbox = Arc::new(Mutex::new(outbox));

    let services: Vec<_> = config
        .services
        .iter()
        .map(|s| s.get_ref().clone())
        .collect();
    let bound = services::bind_all(&services).await?;
    let addresses: Vec<(String, SocketAddr)> = bound
        .iter()
        .filter_map(|b| Some((b.service.kind.name().to_owned(), b.local_addr().ok()?)))
        .collect();
    let (stop_tx, stop_rx) = watch::channel(false);
    let (attempt_tx, attempts) = mpsc::channel(ATTEMPT_QUEUE);
    let service_stats = Arc::new(ServiceStats::default());
    let shared = Shared {
        recorder: Recorder::new(attempt_tx),
        stats: service_stats.clone(),
        state_dir: state_dir.clone(),
    };
    let mut tasks = Vec::new();
    for b in bound {
        tasks.push(tokio::spawn(services::serve(
            b,
            shared.clone(),
            stop_rx.clone(),
        )));
    }
    // The pipeline holds the queue open until shutdown, services or not.
    let keep_open = shared.recorder.clone();
    drop(shared);
    let committed = Arc::new(Notify::new());
    let (jobs_link, jobs_task) = if config.jobs.enabled {
        let device_ca_path = config.jobs.device_ca.as_ref().unwrap_or(&settings.root_ca);
        let device_ca = jobs::rotation::read_cas(device_ca_path).map_err(anyhow::Error::msg)?;
        let (event_tx, event_rx) = mpsc::channel(JOBS_EVENTS);
        let (request_tx, request_rx) = mpsc::channel(JOBS_REQUESTS);
        let topics = jobs::protocol::Topics::new(&settings.thing);
        let agent = jobs::agent::JobsAgent {
            topics: topics.clone(),
            events: event_rx,
            requests: request_tx,
            store: job_store,
            settings: settings.clone(),
            device_ca,
            rotation_deadline: Duration::from_secs(config.jobs.rotation_deadline_secs),
            csr_wait: Duration::from_secs(config.jobs.csr_wait_secs),
            shutdown: stop_rx.clone(),
            services: addresses.clone(),
            status: status.clone(),
        };
        let link = uplink::JobsLink {
            topics,
            events: event_tx,
            requests: request_rx,
        };
        (Some(link), Some(tokio::spawn(agent.run(stop_rx.clone()))))
    } else {
        (None, None)
    };
    let pair = jobs::rotation::PairPaths {
        cert: settings.cert.clone(),
        key: settings.key.clone(),
    };
    if let Ok(id) = pair
        .read()
        .map_err(|e| e.to_string())
        .and_then(|p| p.certificate_id())
    {
        status.certificate(&id);
    }
    let uplink = Uplink {
        settings: settings.clone(),
        tls,
        outbox: outbox.clone(),
        committed: committed.clone(),
        status: status.clone(),
        max_publish_per_sec: config.reporting.max_publish_per_sec,
        jobs: jobs_link,
    };
    let mut uplink_task = tokio::spawn(uplink.run(stop_rx.clone()));
    let status_task = tokio::spawn(write_status(
        state_dir.clone(),
        status.clone(),
        settings.clone(),
        service_stats,
        stop_rx.clone(),
    ));
    ready(addresses);
    tracing::info!(thing = %settings.thing, topic = %settings.topic, services = services.len(), "the canary is running");

    let pipeline = Pipeline {
        aggregator,
        outbox,
        status: status.clone(),
        committed,
    };
    // The uplink ends only at shutdown; if it ends before (a bug), the
    // canary stops cleanly and says so, for its supervisor to restart it.
    let mut uplink_ended = None;
    let until = async {
        tokio::select! {
            _ = shutdown => {}
            ended = &mut uplink_task => uplink_ended = Some(ended),
        }
    };
    pipeline.run(attempts, keep_open, until, stop_tx).await;
    for task in tasks {
        let _ = task.await;
    }
    let _ = status_task.await;
    if let Some(task) = jobs_task {
        let _ = task.await;
    }
    match uplink_ended {
        Some(ended) => {
            let why = match ended {
                Err(e) if e.is_panic() => "it panicked".to_string(),
                Err(e) => e.to_string(),
                Ok(()) => "it returned".to_string(),
            };
            anyhow::bail!("the gateway connection task ended unexpectedly ({why}); everything recorded is in the outbox")
        }
        None => {
            let _ = uplink_task.await;
            Ok(())
        }
    }
}

struct Pipeline {
    aggregator: Aggregator,
    outbox: SharedOutbox,
    status: Arc<Status>,
    committed: Arc<Notify>,
}

impl Pipeline {
    async fn run(
        mut self,
        mut attempts: mpsc::Receiver<Recorded>,
        keep_open: Recorder,
        shutdown: impl Future<Output = ()>,
        stop: watch::Sender<bool>,
    ) {
        tokio::pin!(shutdown);
        let mut batch = Vec::with_capacity(BATCH);
        let mut incidents: Vec<Incident> = Vec::new();
        // Services waiting for their attempts to be written.
        let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stopping = false;
        let mut keep_open = Some(keep_open);
        // After a failed commit no more attempts are taken until a retry
        // succeeds: services wait on the full queue instead.
        let mut healthy = true;
        loop {
            let open = tokio::select! {
                n = attempts.recv_many(&mut batch, BATCH), if healthy => n > 0,
                _ = tick.tick() => true,
                _ = &mut shutdown, if !stopping => {
                    // Services stop accepting; what they recorded is still
                    // taken until the queue closes.
                    stopping = true;
                    keep_open.take();
                    let _ = stop.send(true);
                    true
                }
            };
            let now = Instant::now();
            for (attempt, done) in batch.drain(..) {
                self.status.attempt(attempt.service);
                incidents.extend(self.aggregator.observe(&attempt, now));
                waiting.push(done);
            }
            incidents.extend(self.aggregator.tick(now, time::OffsetDateTime::now_utc()));
            healthy = self.commit(&mut incidents).await;
            if healthy {
                for done in waiting.drain(..) {
                    let _ = done.send(());
                }
            }
            if !open {
                // Every service has ended and the queue is empty.
                break;
            }
        }
        // Whatever could not be committed is retried until it is (or the
        // process is killed, when it was never acknowledged to anyone).
        while !incidents.is_empty() {
            tokio::time::sleep(Duration::from_secs(1)).await;
            self.commit(&mut incidents).await;
        }
        drop(waiting);
    }

    /// Commits the incidents and the windows' changes; on failure keeps the
    /// incidents for the next try. True when everything is written.
    async fn commit(&mut self, incidents: &mut Vec<Incident>) -> bool {
        let changes = self.aggregator.take_changes();
        if incidents.is_empty() && changes.is_empty() {
            return true;
        }
        let mut outbox = self.outbox.lock().await;
        match outbox.commit(incidents, &changes).await {
            Ok(folding) => {
                for incident in incidents.drain(..) {
                    self.status.incident(incident.kind.name());
                }
                if folding.incidents > 0 {
                    self.status.folded(folding.incidents);
                    tracing::warn!(
                        incidents = folding.incidents,
                        attempts = folding.attempts,
                        "the outbox is full: its oldest incidents were folded into one"
                    );
                }
                self.status.outbox(outbox.depth());
                self.committed.notify_one();
                true
            }
            Err(e) => {
                // The windows' changes went with the failed transaction;
                // they are written again with the next one.
                self.aggregator.retry(changes);
                self.status.error(&e.to_string());
                tracing::error!(error = %e, "could not write to the outbox; retrying");
                false
            }
        }
    }
}

async fn write_status(
    dir: std::path::PathBuf,
    status: Arc<Status>,
    settings: AgentSettings,
    services: Arc<ServiceStats>,
    mut stop: watch::Receiver<bool>,
) {
    let mut written = u64::MAX;
    let mut interval = tokio::time::interval(status::INTERVAL);
    let mut ticks = 0u64;
    loop {
        ticks += 1;
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.changed() => {}
        }
        let stopping = *stop.borrow();
        let version = status.version();
        // Rewritten when something changed, and every few seconds anyway so
        // that `updatedAt` shows the agent alive.
        if version != written || stopping || ticks.is_multiple_of(5) {
            let snapshot = status.snapshot(&settings, &services);
            if let Err(e) = status::write(&dir, &snapshot) {
                tracing::warn!(error = %e, "could not write the status file");
            }
            written = version;
        }
        if stopping {
            return;
        }
    }
}

/// Creates the state directory, readable by its owner only (it holds host
/// keys and what attackers typed).
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| {
                anyhow::anyhow!("cannot create the state directory {}: {e}", dir.display())
            })?;
    }
    Ok(())
}
