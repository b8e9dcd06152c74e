//! The canary's own health: connected or not, the outbox's depth, attempts
//! by service, the last error. The running agent writes it to
//! `status.json` in its state directory (atomically, once a second when it
//! changed); `roost-canary status` reads it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// The file's name in the state directory.
pub const FILE: &str = "status.json";
/// How often the running agent rewrites the file.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// Live counters, shared by the agent's tasks.
#[derive(Debug, Default)]
pub struct Status {
    connected: AtomicBool,
    changes: AtomicU64,
    published: AtomicU64,
    acknowledged: AtomicU64,
    attempts_reported: AtomicU64,
    connects: AtomicU64,
    failures: AtomicU64,
    folded: AtomicU64,
    outbox_incidents: AtomicU64,
    outbox_bytes: AtomicU64,
    jobs_dropped: AtomicU64,
    text: Mutex<Text>,
}

#[derive(Debug, Default)]
struct Text {
    last_error: Option<(String, String)>,
    connected_since: Option<String>,
    attempts: BTreeMap<String, u64>,
    incidents: BTreeMap<String, u64>,
    last_job: Option<String>,
    certificate_id: Option<String>,
}

/// What `status.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub pid: u32,
    pub updated_at: String,
    pub thing: String,
    pub endpoint: String,
    pub topic: String,
    pub connected: bool,
    pub connected_since: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    pub outbox_incidents: u64,
    pub outbox_bytes: u64,
    /// Attempts recorded, by service (every one counted).
    pub attempts: BTreeMap<String, u64>,
    /// Incidents written to the outbox, by kind.
    pub incidents: BTreeMap<String, u64>,
    pub published: u64,
    pub acknowledged: u64,
    /// Attempts in acknowledged incidents (in this run; an incident sent
    /// twice counts twice).
    pub attempts_reported: u64,
    pub connects: u64,
    pub connection_failures: u64,
    /// Incidents folded because the outbox was full.
    pub folded: u64,
    /// Connections past a service's cap, and cut at the deadline.
    pub over_capacity: u64,
    pub deadline_cuts: u64,
    /// Jobs messages dropped because the jobs agent was busy (it asks
    /// again; counted so that a stuck agent shows).
    #[serde(default)]
    pub jobs_messages_dropped: u64,
    /// The last job's outcome: `<job id> <status>`.
    #[serde(default)]
    pub last_job: Option<String>,
    /// The certificate the canary connects with (changes on rotation).
    #[serde(default)]
    pub certificate_id: Option<String>,
}

fn now() -> String {
    crate::incident::timestamp(time::OffsetDateTime::now_utc())
}

impl Status {
    fn changed(&self) {
        self.changes.fetch_add(1, Ordering::Relaxed);
    }

    pub fn version(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }

    pub fn connected(&self) {
        self.connected.store(true, Ordering::Relaxed);
        self.connects.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut t) = self.text.lock() {
            t.connected_since = Some(now());
        }
        self.changed();
    }

    pub fn disconnected(&self, reason: &str) {
        self.connected.store(false, Ordering::Relaxed);
        self.failures.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut t) = self.text.lock() {
            t.connected_since = None;
            t.last_error = Some((reason.to_owned(), now()));
        }
        self.changed();
    }

    pub fn error(&self, reason: &str) {
        if let Ok(mut t) = self.text.lock() {
            t.last_error = Some((reason.to_owned(), now()));
        }
        self.changed();
    }

    pub fn jobs_message_dropped(&self) {
        self.jobs_dropped.fetch_add(1, Ordering::Relaxed);
        self.changed();
    }

    pub fn job_ended(&self, job: &str, status: &str) {
        if let Ok(mut t) = self.text.lock() {
            t.last_job = Some(format!("{job} {status}"));
        }
        self.changed();
    }

    pub fn certificate(&self, id: &str) {
        if let Ok(mut t) = self.text.lock() {
            t.certificate_id = Some(id.to_owned());
        }
        self.changed();
    }

    pub fn published(&self) {
        self.published.fetch_add(1, Ordering::Relaxed);
        self.changed();
    }

    /// An incident standing for `attempts` attempts was acknowledged.
    pub fn acknowledged(&self, attempts: u64) {
        self.acknowledged.fetch_add(1, Ordering::Relaxed);
        self.attempts_reported
            .fetch_add(attempts, Ordering::Relaxed);
        self.changed();
    }

    pub fn outbox(&self, (incidents, bytes): (u64, u64)) {
        self.outbox_incidents.store(incidents, Ordering::Relaxed);
        self.outbox_bytes.store(bytes, Ordering::Relaxed);
        self.changed();
    }

    pub fn folded(&self, incidents: u64) {
        self.folded.fetch_add(incidents, Ordering::Relaxed);
        self.changed();
    }

    pub fn attempt(&self, service: &str) {
        if let Ok(mut t) = self.text.lock() {
            *t.attempts.entry(service.to_owned()).or_default() += 1;
        }
        self.changed();
    }

    pub fn incident(&self, kind: &str) {
        if let Ok(mut t) = self.text.lock() {
            *t.incidents.entry(kind.to_owned()).or_default() += 1;
        }
        self.changed();
    }

    pub fn snapshot(
        &self,
        settings: &crate::config::AgentSettings,
        services: &crate::services::ServiceStats,
    ) -> Snapshot {
        let t = self.text.lock().map(|t| {
            (
                t.last_error.clone(),
                t.connected_since.clone(),
                t.attempts.clone(),
                t.incidents.clone(),
                t.last_job.clone(),
                t.certificate_id.clone(),
            )
        });
        let (last_error, connected_since, attempts, incidents, last_job, certificate_id) =
            t.unwrap_or_default();
        let (last_error, last_error_at) = last_error.unzip();
        Snapshot {
            pid: std::process::id(),
            updated_at: now(),
            thing: settings.thing.clone(),
            endpoint: format!("{}:{}", settings.endpoint, settings.port),
            topic: settings.topic.clone(),
            connected: self.connected.load(Ordering::Relaxed),
            connected_since,
            last_error,
            last_error_at,
            outbox_incidents: self.outbox_incidents.load(Ordering::Relaxed),
            outbox_bytes: self.outbox_bytes.load(Ordering::Relaxed),
            attempts,
            incidents,
            published: self.published.load(Ordering::Relaxed),
            acknowledged: self.acknowledged.load(Ordering::Relaxed),
            attempts_reported: self.attempts_reported.load(Ordering::Relaxed),
            connects: self.connects.load(Ordering::Relaxed),
            connection_failures: self.failures.load(Ordering::Relaxed),
            folded: self.folded.load(Ordering::Relaxed),
            over_capacity: services.over_capacity.load(Ordering::Relaxed),
            deadline_cuts: services.deadline_cuts.load(Ordering::Relaxed),
            jobs_messages_dropped: self.jobs_dropped.load(Ordering::Relaxed),
            last_job,
            certificate_id,
        }
    }
}

/// Writes `snapshot` to `dir/status.json` atomically (a temporary file
/// renamed over it).
pub fn write(dir: &Path, snapshot: &Snapshot) -> std::io::Result<()> {
    let tmp = dir.join(format!("{FILE}.tmp"));
    let text = serde_json::to_vec_pretty(snapshot).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, dir.join(FILE))
}

/// Reads `dir/status.json`; whether the agent that wrote it still runs.
pub fn read(dir: &Path) -> anyhow::Result<(Snapshot, bool)> {
    let path = dir.join(FILE);
    let text = std::fs::read(&path).map_err(|e| {
        anyhow::anyhow!(
            "no status in {} ({e}): is a canary running with --state-dir {}?",
            path.display(),
            dir.display()
        )
    })?;
    let snapshot: Snapshot = serde_json::from_slice(&text)
        .map_err(|e| anyhow::anyhow!("{}: not a canary status: {e}", path.display()))?;
    let running = Path::new(&format!("/proc/{}", snapshot.pid)).exists() && crate::lock::held(dir);
    Ok((snapshot, running))
}

/// The status as an operator reads it.
pub fn render(snapshot: &Snapshot, running: bool) -> String {
    let mut out = String::new();
    let state = match (running, snapshot.connected) {
        (false, _) => "not running".to_string(),
        (true, true) => format!(
            "connected to {} since {}",
            snapshot.endpoint,
            snapshot.connected_since.as_deref().unwrap_or("?")
        ),
        (true, false) => format!("running, not connected to {}", snapshot.endpoint),
    };
    out.push_str(&format!(
        "canary {} (pid {}): {state}\n",
        snapshot.thing, snapshot.pid
    ));
    out.push_str(&format!("topic: {}\n", snapshot.topic));
    if let Some(id) = &snapshot.certificate_id {
        out.push_str(&format!("certificate: {id}\n"));
    }
    if let Some(job) = &snapshot.last_job {
        out.push_str(&format!("last job: {job}\n"));
    }
    out.push_str(&format!(
        "outbox: {} incidents ({} bytes) waiting\n",
        snapshot.outbox_incidents, snapshot.outbox_bytes
    ));
    let attempts: Vec<String> = snapshot
        .attempts
        .iter()
        .map(|(s, n)| format!("{s} {n}"))
        .collect();
    out.push_str(&format!(
        "attempts: {}\n",
        if attempts.is_empty() {
            "none".into()
        } else {
            attempts.join(", ")
        }
    ));
    out.push_str(&format!(
        "published {}, acknowledged {} ({} attempts), folded {}, connections {} ({} failed)\n",
        snapshot.published,
        snapshot.acknowledged,
        snapshot.attempts_reported,
        snapshot.folded,
        snapshot.connects,
        snapshot.connection_failures
    ));
    if let Some(error) = &snapshot.last_error {
        out.push_str(&format!(
            "last error: {error} (at {})\n",
            snapshot.last_error_at.as_deref().unwrap_or("?")
        ));
    }
    out.push_str(&format!("status written at {}\n", snapshot.updated_at));
    out
}
