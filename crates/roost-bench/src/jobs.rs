//! Jobs: N devices (client id = thing name `{prefix}{i}`) subscribe to
//! their `jobs/notify-next`, then `--ready-file` is written; the caller
//! creates one job for all of them. Each device, on the notify-next that
//! carries an execution, publishes start-next; on its accepted reply, an
//! update to SUCCEEDED. The run ends when every device's update is accepted
//! (or at the duration cap). Reported: how many succeeded, the time from
//! the first notify-next to the last accepted update, and the broker's CPU
//! per execution over the whole run (job creation and rollout included).
//! Roost-only: the other brokers have no jobs.

use crate::mqtt::{encode, open_many, puback_packet, publish_packet, write_buf, SessionKind};
use crate::process::CpuMeter;
use crate::report::round;
use crate::target::Target;
use anyhow::{Context, Result};
use bytes::{Bytes, BytesMut};
use roost_mqtt::{Packet, QoS};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct JobsSpec {
    pub things: usize,
    pub prefix: String,
    pub concurrency: usize,
    pub ready_file: PathBuf,
    pub duration: Duration,
    pub broker_pid: Option<u32>,
}

/// When one device was first told of its job and when its update was accepted.
type Timeline = (Instant, Instant);

async fn device(
    mut conn: crate::mqtt::Connection,
    thing: String,
    deadline: Instant,
) -> Result<Option<Timeline>> {
    let base = format!("$aws/things/{thing}/jobs");
    let mut notified = None;
    let mut buf = BytesMut::new();
    let outcome = tokio::time::timeout_at(deadline.into(), async {
        loop {
            let Some(packet) = conn.read_packet().await? else {
                return Ok(None);
            };
            let Packet::Publish(publish) = packet else {
                continue;
            };
            if let Some(id) = publish.packet_id {
                encode(&puback_packet(id), conn.protocol, &mut buf);
            }
            let body: Value = serde_json::from_slice(&publish.payload).unwrap_or_default();
            let topic = publish.topic.as_str();
            if topic == format!("{base}/notify-next") && body.get("execution").is_some() {
                if notified.is_none() {
                    notified = Some(Instant::now());
                    let request = json!({ "clientToken": thing }).to_string();
                    let start = publish_packet(
                        &format!("{base}/start-next"),
                        QoS::AtLeastOnce,
                        Some(1),
                        Bytes::from(request),
                    );
                    encode(&start, conn.protocol, &mut buf);
                }
            } else if topic == format!("{base}/start-next/accepted") {
                if let Some(job) = body["execution"]["jobId"].as_str() {
                    let version = body["execution"]["versionNumber"].as_u64().unwrap_or(2);
                    let update =
                        json!({ "status": "SUCCEEDED", "expectedVersion": version }).to_string();
                    let packet = publish_packet(
                        &format!("{base}/{job}/update"),
                        QoS::AtLeastOnce,
                        Some(2),
                        Bytes::from(update),
                    );
                    encode(&packet, conn.protocol, &mut buf);
                }
            } else if topic.ends_with("/update/accepted") {
                write_buf(&mut conn.stream, &mut buf).await?;
                return Ok(notified.map(|at| (at, Instant::now())));
            }
            if !buf.is_empty() {
                write_buf(&mut conn.stream, &mut buf).await?;
            }
        }
    })
    .await;
    conn.disconnect().await;
    match outcome {
        Ok(result) => result,
        Err(_) => Ok(None),
    }
}

pub async fn run(target: &Target, spec: JobsSpec, label: &str) -> Result<(Value, String)> {
    let things: Vec<String> = (0..spec.things)
        .map(|i| format!("{}{i}", spec.prefix))
        .collect();
    let mut conns = open_many(target, things.clone(), spec.concurrency, SessionKind::Clean).await?;
    for (conn, thing) in conns.iter_mut().zip(&things) {
        conn.subscribe(
            &format!("$aws/things/{thing}/jobs/notify-next"),
            QoS::AtLeastOnce,
        )
        .await
        .with_context(|| format!("{thing} subscribing to its notify-next"))?;
    }
    let cpu = CpuMeter::start(spec.broker_pid)?;
    let deadline = Instant::now() + spec.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for (conn, thing) in conns.into_iter().zip(things) {
        tasks.spawn(device(conn, thing, deadline));
    }
    std::fs::write(&spec.ready_file, b"ready\n")
        .with_context(|| format!("writing {}", spec.ready_file.display()))?;
    let mut timelines = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        if let Some(timeline) = joined.context("a device task panicked")?? {
            timelines.push(timeline);
        }
    }
    let cpu_seconds = cpu.map(|c| c.seconds()).transpose()?;
    let succeeded = timelines.len();
    let first = timelines.iter().map(|t| t.0).min();
    let last = timelines.iter().map(|t| t.1).max();
    let seconds = match (first, last) {
        (Some(first), Some(last)) => last.duration_since(first).as_secs_f64(),
        _ => 0.0,
    };
    let cpu_ms_per_execution = cpu_seconds
        .filter(|_| succeeded > 0)
        .map(|s| s * 1000.0 / succeeded as f64);
    let record = json!({
        "label": label,
        "mode": "jobs",
        "things": spec.things,
        "succeeded": succeeded,
        "lost": spec.things - succeeded,
        "seconds": round(seconds),
        "broker_cpu_seconds": cpu_seconds.map(round),
        "broker_cpu_ms_per_execution": cpu_ms_per_execution.map(round),
    });
    let cpu_text = match (cpu_seconds, cpu_ms_per_execution) {
        (Some(s), Some(per)) => format!("; broker CPU {s:.2} s, {per:.2} ms per execution"),
        _ => String::new(),
    };
    let human = format!(
        "[{label}] jobs {}: {succeeded} of {} executions SUCCEEDED in {seconds:.2} s (first notify-next to last accepted update){cpu_text}",
        spec.things, spec.things
    );
    Ok((record, human))
}
