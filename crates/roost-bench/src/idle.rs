//! Idle connections: open `connections` mutual-TLS MQTT connections, hold
//! them without traffic, and (given the broker's pid) read the broker's
//! resident memory before opening and once all are open and settled, from
//! `/proc/<pid>/status` (VmRSS). Memory per connection is the difference
//! divided by the connections opened.

use crate::flow::close_all;
use crate::mqtt::Connection;
use crate::process::rss_kib;
use crate::report::round;
use crate::target::Target;
use anyhow::Result;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

#[derive(Debug, Clone)]
pub struct IdleSpec {
    pub connections: usize,
    pub concurrency: usize,
    /// Wait after the last CONNACK before reading memory.
    pub settle: Duration,
    /// How long the connections are held after the reading.
    pub hold: Duration,
    /// The broker process whose memory is read.
    pub broker_pid: Option<u32>,
    /// The cap on opening the connections.
    pub duration: Duration,
}

pub async fn run(target: &Target, spec: IdleSpec, label: &str) -> Result<(Value, String)> {
    let rss_before = spec.broker_pid.map(rss_kib).transpose()?;
    let base = Instant::now();
    let deadline = base + spec.duration;
    let pid = std::process::id();
    let permits = Arc::new(Semaphore::new(spec.concurrency.max(1)));
    let mut opening = JoinSet::new();
    for i in 0..spec.connections {
        let (target, permits) = (target.clone(), permits.clone());
        opening.spawn(async move {
            let _permit = permits.acquire_owned().await.expect("never closed");
            if Instant::now() >= deadline {
                return None;
            }
            Some(Connection::open(&target, &format!("bench-{pid}-i{i}")).await)
        });
    }
    let mut open = Vec::with_capacity(spec.connections);
    let (mut failed, mut skipped) = (0u64, 0u64);
    let mut first_error = None;
    while let Some(joined) = opening.join_next().await {
        match joined? {
            Some(Ok(conn)) => open.push(conn),
            Some(Err(e)) => {
                failed += 1;
                first_error.get_or_insert_with(|| format!("{}: {:#}", e.stage.name(), e.error));
            }
            None => skipped += 1,
        }
    }
    let open_seconds = base.elapsed().as_secs_f64();
    tokio::time::sleep(spec.settle).await;
    let rss_after = spec.broker_pid.map(rss_kib).transpose()?;
    let own_rss = rss_kib(std::process::id()).ok();
    tokio::time::sleep(spec.hold).await;
    let opened = open.len();
    close_all(open).await;

    let per_connection = match (rss_before, rss_after) {
        (Some(before), Some(after)) if opened > 0 => {
            Some((after as f64 - before as f64) / opened as f64)
        }
        _ => None,
    };
    let record = json!({
        "label": label,
        "mode": "idle",
        "connections": spec.connections,
        "opened": opened,
        "failed": failed,
        "not_attempted": skipped,
        "first_error": first_error,
        "open_seconds": round(open_seconds),
        "broker_pid": spec.broker_pid,
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "rss_per_connection_kib": per_connection.map(round),
        "load_generator_rss_kib": own_rss,
    });
    let mut human = format!(
        "[{label}] idle: {opened} of {} TLS connections open ({failed} failed) in {open_seconds:.2} s",
        spec.connections
    );
    if let (Some(before), Some(after), Some(per)) = (rss_before, rss_after, per_connection) {
        human.push_str(&format!(
            "; broker RSS {before} KiB → {after} KiB = {per:.1} KiB per connection"
        ));
    }
    if let Some(e) = &first_error {
        human.push_str(&format!("; first error: {e}"));
    }
    Ok((record, human))
}
