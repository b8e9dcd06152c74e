//! Connection rate: `concurrency` clients each repeat TCP connect, a full
//! mutual-TLS handshake (no session resumption), CONNECT, CONNACK,
//! DISCONNECT, until `count` connects were attempted or the duration cap.

use crate::mqtt::{Connection, Stage};
use crate::process::{per_cpu_second, CpuMeter};
use crate::report::{per_second, round, Percentiles};
use crate::target::Target;
use anyhow::Result;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

#[derive(Debug, Clone)]
pub struct ConnectsSpec {
    pub count: u64,
    pub concurrency: usize,
    pub duration: Duration,
    /// The broker process whose CPU time the handshakes are charged.
    pub broker_pid: Option<u32>,
}

#[derive(Default)]
struct WorkerOutcome {
    connected: u64,
    /// Start of the TCP connect to CONNACK, nanoseconds.
    times_ns: Vec<u64>,
    failures: HashMap<Stage, u64>,
    first_error: Option<String>,
    /// What the first handshake negotiated.
    tls: Option<String>,
}

pub async fn run(target: &Target, spec: ConnectsSpec, label: &str) -> Result<(Value, String)> {
    let started = Arc::new(AtomicU64::new(0));
    let cpu = CpuMeter::start(spec.broker_pid)?;
    let base = Instant::now();
    let deadline = base + spec.duration;
    let pid = std::process::id();
    let mut workers = JoinSet::new();
    for worker in 0..spec.concurrency.max(1) {
        let (target, started, count) = (target.clone(), started.clone(), spec.count);
        workers.spawn(async move {
            let mut outcome = WorkerOutcome::default();
            while Instant::now() < deadline {
                let attempt = started.fetch_add(1, Ordering::Relaxed);
                if attempt >= count {
                    break;
                }
                let t0 = Instant::now();
                match Connection::open(&target, &format!("bench-{pid}-c{worker}-{attempt}")).await {
                    Ok(conn) => {
                        outcome.times_ns.push(t0.elapsed().as_nanos() as u64);
                        if outcome.tls.is_none() {
                            outcome.tls = Some(conn.tls_summary());
                        }
                        outcome.connected += 1;
                        conn.disconnect().await;
                    }
                    Err(e) => {
                        *outcome.failures.entry(e.stage).or_default() += 1;
                        outcome
                            .first_error
                            .get_or_insert_with(|| format!("{}: {:#}", e.stage.name(), e.error));
                    }
                }
            }
            outcome
        });
    }
    let mut total = WorkerOutcome::default();
    while let Some(joined) = workers.join_next().await {
        let outcome = joined?;
        total.connected += outcome.connected;
        total.times_ns.extend(outcome.times_ns);
        for (stage, n) in outcome.failures {
            *total.failures.entry(stage).or_default() += n;
        }
        if total.first_error.is_none() {
            total.first_error = outcome.first_error;
        }
        if total.tls.is_none() {
            total.tls = outcome.tls;
        }
    }
    let elapsed = base.elapsed();
    let broker_cpu_s = cpu.map(|cpu| cpu.seconds()).transpose()?;
    let rate = per_second(total.connected, elapsed);
    let failures: u64 = total.failures.values().sum();
    let by_stage: HashMap<&str, u64> = total
        .failures
        .iter()
        .map(|(stage, n)| (stage.name(), *n))
        .collect();
    let mut record = json!({
        "label": label,
        "mode": "connects",
        "concurrency": spec.concurrency,
        "count": spec.count,
        "connected": total.connected,
        "failed": failures,
        "failed_by_stage": by_stage,
        "first_error": total.first_error,
        "tls": total.tls,
        "seconds": round(elapsed.as_secs_f64()),
        "connects_per_s": round(rate),
        "broker_cpu_s": broker_cpu_s.map(round),
        "connects_per_broker_cpu_s": per_cpu_second(total.connected, broker_cpu_s).map(round),
    });
    let mut human = format!(
        "[{label}] connects x{}: {rate:.0} mTLS connects/s ({} connected, {failures} failed) in {:.2} s",
        spec.concurrency,
        total.connected,
        elapsed.as_secs_f64()
    );
    if let Some(p) = Percentiles::of(&mut total.times_ns) {
        human.push_str(&format!(
            "; connect→CONNACK p50 {:.1} ms, p99 {:.1} ms",
            p.p50_us / 1000.0,
            p.p99_us / 1000.0
        ));
        record["connect_time"] = p.to_json();
    }
    if let Some(cpu) = broker_cpu_s {
        human.push_str(&format!("; broker CPU {cpu:.2} s"));
    }
    if let Some(tls) = &total.tls {
        human.push_str(&format!("; {tls}"));
    }
    if let Some(e) = &total.first_error {
        human.push_str(&format!("; first error: {e}"));
    }
    Ok((record, human))
}
