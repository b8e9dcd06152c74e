//! Message loads: publishers and subscribers wired as 1:1 pairs, fan-in
//! (many publishers, one subscriber) or fan-out (one publisher, many
//! subscribers), at QoS 0 or 1, as fast as the broker delivers or at a fixed
//! rate.
//!
//! Flow control is end to end: each subscriber allows a bounded number of
//! messages to be on their way to it (`window`, shared among the publishers
//! that feed it), and a publisher sends only while it holds a permit from
//! every subscriber it feeds; a subscriber gives the permit back when the
//! message arrives. Throughput is then what the broker delivers, not how
//! fast it can drop what a flooding publisher sends, and no broker queue
//! limit is reached by construction (Roost's and Mosquitto's per-client
//! queues hold 1,000 messages). A lost message keeps its permit, so losses
//! show up as a shortfall and, at worst, a stalled publisher that the
//! duration cap ends. With `window = 0` publishers are not held back.
//!
//! At a fixed rate (the latency load) there is no window: publishers keep
//! their schedule whatever the broker does, so a stall shows in the
//! latencies instead of being hidden by a publisher that waited.
//!
//! Never: run longer than the duration cap plus the drain time, or keep
//! more than `messages` latency samples.

use crate::mqtt::{self, Connection};
use crate::process::{per_cpu_second, CpuMeter};
use crate::report::{per_second, round, Percentiles};
use crate::target::Target;
use anyhow::{bail, Context, Result};
use bytes::{BufMut, Bytes, BytesMut};
use roost_mqtt::{Packet, QoS};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// Messages encoded into one write.
const BATCH: u64 = 64;
/// Bytes at the start of every payload: publisher, sequence, send time.
pub const STAMP_BYTES: usize = 4 + 8 + 8;

/// Who publishes to whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// N publishers, each with its own subscriber on its own topic.
    Pairs(usize),
    /// N publishers on N topics, one subscriber to all of them (`+`).
    FanIn(usize),
    /// One publisher, N subscribers to its topic.
    FanOut(usize),
}

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Shape::Pairs(_) => "pairs",
            Shape::FanIn(_) => "fan-in",
            Shape::FanOut(_) => "fan-out",
        }
    }

    pub fn publishers(self) -> usize {
        match self {
            Shape::Pairs(n) | Shape::FanIn(n) => n,
            Shape::FanOut(_) => 1,
        }
    }

    pub fn subscribers(self) -> usize {
        match self {
            Shape::Pairs(n) | Shape::FanOut(n) => n,
            Shape::FanIn(_) => 1,
        }
    }

    fn topic(self, run: &str, publisher: usize) -> String {
        match self {
            Shape::Pairs(_) => format!("bench/{run}/pair/{publisher}"),
            Shape::FanIn(_) => format!("bench/{run}/in/{publisher}"),
            Shape::FanOut(_) => format!("bench/{run}/out"),
        }
    }

    fn filter(self, run: &str, subscriber: usize) -> String {
        match self {
            Shape::Pairs(_) => format!("bench/{run}/pair/{subscriber}"),
            Shape::FanIn(_) => format!("bench/{run}/in/+"),
            Shape::FanOut(_) => format!("bench/{run}/out"),
        }
    }

    /// The subscribers that receive what `publisher` sends.
    fn subscribers_of(self, publisher: usize) -> Vec<usize> {
        match self {
            Shape::Pairs(_) => vec![publisher],
            Shape::FanIn(_) => vec![0],
            Shape::FanOut(n) => (0..n).collect(),
        }
    }

    /// How many publishers feed one subscriber.
    fn publishers_per_subscriber(self) -> usize {
        match self {
            Shape::Pairs(_) | Shape::FanOut(_) => 1,
            Shape::FanIn(n) => n,
        }
    }
}

#[derive(Debug, Clone)]
pub struct FlowSpec {
    pub shape: Shape,
    pub qos: QoS,
    /// Messages published in total, spread evenly over the publishers.
    pub messages: u64,
    pub payload_bytes: usize,
    /// Messages on their way to one subscriber; 0: no end-to-end window.
    pub window: usize,
    /// QoS 1 PUBLISHes one publisher may have awaiting PUBACK.
    pub inflight: usize,
    /// Messages per second over all publishers; `None`: as fast as delivered.
    pub rate: Option<f64>,
    /// The cap on the publishing phase.
    pub duration: Duration,
    /// How long, once publishing ends, stragglers are waited for.
    pub drain: Duration,
    /// Handshakes in flight while the clients connect.
    pub connect_concurrency: usize,
    /// Subscribers keep persistent sessions under fixed client ids
    /// (`bench-persistent-s<n>`), so that every QoS 1 message they are sent
    /// is durable state in a broker that has any. Two such runs must not
    /// share a broker at once.
    pub persistent: bool,
    /// The broker process whose CPU time the measured phase is charged.
    pub broker_pid: Option<u32>,
    /// More processes charged with it (a cluster's other nodes, NATS).
    pub other_pids: Vec<u32>,
    /// Where the subscribers connect, when not to the publishers' broker
    /// (another node of a cluster).
    pub subscribe_to: Option<Target>,
}

/// Shared between the subscribers and the coordinator.
#[derive(Default)]
struct Progress {
    received: AtomicU64,
    /// Nanoseconds after the start of the last delivery.
    last_receive_ns: AtomicU64,
    /// Payloads without our stamp (not from this run).
    foreign: AtomicU64,
    /// Messages that arrived again or before an earlier one of the same
    /// publisher: neither should happen on one connection without reconnects.
    out_of_order: AtomicU64,
}

/// A unique tag for the topics and client ids of one run.
fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{:x}{:x}", std::process::id(), nanos)
}

fn stamp(publisher: u32, seq: u64, sent_ns: u64, size: usize) -> Bytes {
    let mut payload = BytesMut::with_capacity(size.max(STAMP_BYTES));
    payload.put_u32_le(publisher);
    payload.put_u64_le(seq);
    payload.put_u64_le(sent_ns);
    payload.resize(size.max(STAMP_BYTES), b'x');
    payload.freeze()
}

/// (publisher, sequence, send time in ns after the start).
fn read_stamp(payload: &[u8]) -> Option<(u32, u64, u64)> {
    if payload.len() < STAMP_BYTES {
        return None;
    }
    let publisher = u32::from_le_bytes(payload[0..4].try_into().ok()?);
    let seq = u64::from_le_bytes(payload[4..12].try_into().ok()?);
    let sent = u64::from_le_bytes(payload[12..20].try_into().ok()?);
    Some((publisher, seq, sent))
}

fn nanos_since(base: Instant) -> u64 {
    base.elapsed().as_nanos() as u64
}

/// Takes up to `want` permits from `semaphore`: waits for the first until
/// `deadline`, then takes what is free without waiting. `None`: deadline.
async fn take(semaphore: &Semaphore, want: u64, deadline: Instant) -> Option<u64> {
    let first = tokio::time::timeout_at(deadline.into(), semaphore.acquire())
        .await
        .ok()?
        .expect("never closed");
    first.forget();
    let extra = (semaphore.available_permits() as u64).min(want.saturating_sub(1));
    if extra > 0 {
        semaphore
            .try_acquire_many(extra as u32)
            .expect("only this publisher takes permits")
            .forget();
    }
    Some(1 + extra)
}

struct PublisherOutcome {
    sent: u64,
    acked: u64,
    connection: Connection,
}

#[allow(clippy::too_many_arguments)]
async fn publish_loop(
    index: usize,
    connection: Connection,
    topic: String,
    messages: u64,
    spec: Arc<FlowSpec>,
    links: Vec<Arc<Semaphore>>,
    base: Instant,
    stop: watch::Receiver<bool>,
) -> Result<PublisherOutcome> {
    let deadline = base + spec.duration;
    let protocol = connection.protocol;
    let Connection { stream, rbuf, .. } = connection;
    let (mut reader, mut writer) = tokio::io::split(stream);
    let inflight = Arc::new(Semaphore::new(spec.inflight.max(1)));
    let acked = Arc::new(AtomicU64::new(0));
    // QoS 1: PUBACKs hand the in-flight permits back. QoS 0: nothing comes
    // back, but the socket is still read so the broker is never blocked.
    let ack_task = {
        let (inflight, acked, mut stop, mut rbuf) =
            (inflight.clone(), acked.clone(), stop.clone(), rbuf);
        tokio::spawn(async move {
            let result: Result<()> = async {
                loop {
                    rbuf.reserve(mqtt::READ_CHUNK);
                    tokio::select! {
                        _ = stop.changed() => return Ok(()),
                        read = reader.read_buf(&mut rbuf) => {
                            if read.context("publisher reading")? == 0 {
                                bail!("the broker closed a publisher's connection");
                            }
                        }
                    }
                    let mut acks = 0;
                    mqtt::decode_all(&mut rbuf, protocol, |packet| {
                        if let Packet::PubAck(_) = packet {
                            acks += 1;
                        }
                    })?;
                    acked.fetch_add(acks, Ordering::Relaxed);
                    inflight.add_permits(acks as usize);
                }
            }
            .await;
            (reader, rbuf, result)
        })
    };

    let per_publisher_rate = spec.rate.map(|r| r / spec.shape.publishers() as f64);
    let mut wbuf = BytesMut::with_capacity(64 * 1024);
    let mut seq = 0u64;
    let mut packet_id = 0u16;
    'send: while seq < messages && Instant::now() < deadline {
        let mut n = BATCH.min(messages - seq);
        if let Some(rate) = per_publisher_rate {
            let due = (base.elapsed().as_secs_f64() * rate) as u64 + 1;
            if due <= seq {
                let next = base + Duration::from_secs_f64(seq as f64 / rate);
                tokio::time::sleep_until(next.min(deadline).into()).await;
                continue;
            }
            n = n.min(due - seq);
        }
        // One permit per message from every subscriber this publisher feeds;
        // any surplus taken from the earlier ones is given back.
        let mut taken: Vec<u64> = Vec::with_capacity(links.len());
        for link in &links {
            match take(link, n, deadline).await {
                Some(got) => {
                    n = n.min(got);
                    taken.push(got);
                }
                None => {
                    for (link, got) in links.iter().zip(&taken) {
                        link.add_permits(*got as usize);
                    }
                    break 'send;
                }
            }
        }
        if spec.qos == QoS::AtLeastOnce {
            n = take(&inflight, n, deadline).await.unwrap_or(0);
        }
        for (link, got) in links.iter().zip(&taken) {
            link.add_permits((got - n) as usize);
        }
        if n == 0 {
            break;
        }
        for _ in 0..n {
            let id = (spec.qos == QoS::AtLeastOnce).then(|| {
                packet_id = packet_id.wrapping_add(1).max(1);
                packet_id
            });
            let payload = stamp(index as u32, seq, nanos_since(base), spec.payload_bytes);
            mqtt::encode(
                &mqtt::publish_packet(&topic, spec.qos, id, payload),
                protocol,
                &mut wbuf,
            );
            seq += 1;
        }
        mqtt::write_buf(&mut writer, &mut wbuf)
            .await
            .context("publishing")?;
    }

    // QoS 1: wait (within the drain time) for the last PUBACKs.
    if spec.qos == QoS::AtLeastOnce {
        let all = spec.inflight.max(1) as u32;
        let _ = tokio::time::timeout(spec.drain, inflight.acquire_many(all)).await;
    }
    let mut stop = stop;
    let _ = stop.wait_for(|s| *s).await;
    let (reader, rbuf, result) = ack_task.await.context("publisher reader panicked")?;
    result?;
    Ok(PublisherOutcome {
        sent: seq,
        acked: acked.load(Ordering::Relaxed),
        connection: Connection {
            stream: reader.unsplit(writer),
            rbuf,
            protocol,
        },
    })
}

struct SubscriberOutcome {
    received: u64,
    latencies_ns: Vec<u64>,
    connection: Connection,
}

async fn subscribe_loop(
    mut connection: Connection,
    links: HashMap<u32, Arc<Semaphore>>,
    progress: Arc<Progress>,
    base: Instant,
    max_samples: usize,
    record_latency: bool,
    mut stop: watch::Receiver<bool>,
) -> Result<SubscriberOutcome> {
    let protocol = connection.protocol;
    let mut wbuf = BytesMut::with_capacity(16 * 1024);
    let mut received = 0u64;
    let mut latencies_ns = Vec::new();
    // The next sequence number expected from each publisher.
    let mut next_seq: HashMap<u32, u64> = HashMap::new();
    loop {
        connection.rbuf.reserve(mqtt::READ_CHUNK);
        tokio::select! {
            _ = stop.changed() => break,
            read = connection.stream.read_buf(&mut connection.rbuf) => {
                if read.context("subscriber reading")? == 0 {
                    bail!("the broker closed a subscriber's connection after {received} messages");
                }
            }
        }
        let now_ns = nanos_since(base);
        let mut count = 0u64;
        let mut foreign = 0u64;
        let mut out_of_order = 0u64;
        mqtt::decode_all(&mut connection.rbuf, protocol, |packet| {
            let Packet::Publish(publish) = packet else {
                return;
            };
            if let Some(id) = publish.packet_id {
                mqtt::encode(&mqtt::puback_packet(id), protocol, &mut wbuf);
            }
            match read_stamp(&publish.payload) {
                Some((publisher, seq, sent_ns)) => {
                    count += 1;
                    let next = next_seq.entry(publisher).or_default();
                    if seq < *next {
                        out_of_order += 1;
                    }
                    *next = (*next).max(seq + 1);
                    if let Some(link) = links.get(&publisher) {
                        link.add_permits(1);
                    }
                    if record_latency && latencies_ns.len() < max_samples {
                        latencies_ns.push(now_ns.saturating_sub(sent_ns));
                    }
                }
                None => foreign += 1,
            }
        })?;
        if count > 0 {
            received += count;
            progress.received.fetch_add(count, Ordering::Relaxed);
            progress
                .last_receive_ns
                .fetch_max(now_ns, Ordering::Relaxed);
        }
        if foreign > 0 {
            progress.foreign.fetch_add(foreign, Ordering::Relaxed);
        }
        if out_of_order > 0 {
            progress
                .out_of_order
                .fetch_add(out_of_order, Ordering::Relaxed);
        }
        if !wbuf.is_empty() {
            mqtt::write_buf(&mut connection.stream, &mut wbuf)
                .await
                .context("acknowledging")?;
        }
    }
    Ok(SubscriberOutcome {
        received,
        latencies_ns,
        connection,
    })
}

/// Runs one load and returns its JSON record and human line.
pub async fn run(target: &Target, spec: FlowSpec, label: &str) -> Result<(Value, String)> {
    let shape = spec.shape;
    if spec.payload_bytes < STAMP_BYTES {
        bail!("--payload must be at least {STAMP_BYTES} bytes (the stamp)");
    }
    let run = run_id();
    let (publishers, subscribers) = (shape.publishers(), shape.subscribers());

    let (sub_ids, sub_kind) = if spec.persistent {
        let ids = (0..subscribers).map(|s| format!("bench-persistent-s{s}"));
        (ids.collect(), mqtt::SessionKind::Persistent)
    } else {
        let ids = (0..subscribers).map(|s| format!("bench-{run}-s{s}"));
        (ids.collect(), mqtt::SessionKind::Clean)
    };
    let sub_target = spec.subscribe_to.as_ref().unwrap_or(target);
    let mut subs = mqtt::open_many(sub_target, sub_ids, spec.connect_concurrency, sub_kind).await?;
    for (s, conn) in subs.iter_mut().enumerate() {
        conn.subscribe(&shape.filter(&run, s), spec.qos).await?;
    }
    let pub_ids = (0..publishers)
        .map(|p| format!("bench-{run}-p{p}"))
        .collect();
    let pubs = mqtt::open_many(
        target,
        pub_ids,
        spec.connect_concurrency,
        mqtt::SessionKind::Clean,
    )
    .await?;

    // One semaphore per publisher→subscriber link.
    let record_latency = spec.rate.is_some();
    let link_window = match (spec.window, spec.rate) {
        (0, _) | (_, Some(_)) => None,
        (w, None) => Some((w / shape.publishers_per_subscriber()).max(1)),
    };
    let mut pub_links: Vec<Vec<Arc<Semaphore>>> = vec![Vec::new(); publishers];
    let mut sub_links: Vec<HashMap<u32, Arc<Semaphore>>> = vec![HashMap::new(); subscribers];
    if let Some(window) = link_window {
        for (p, links) in pub_links.iter_mut().enumerate() {
            for s in shape.subscribers_of(p) {
                let link = Arc::new(Semaphore::new(window));
                links.push(link.clone());
                sub_links[s].insert(p as u32, link);
            }
        }
    }

    let spec = Arc::new(spec);
    let progress = Arc::new(Progress::default());
    let (stop_tx, stop) = watch::channel(false);
    let max_samples = usize::try_from(spec.messages).unwrap_or(usize::MAX);
    // The broker's CPU time is read over the measured phase only: from the
    // first publish to the end of deliveries, not the connects and
    // subscribes before it or the closes after it.
    let cpu = CpuMeter::start(spec.broker_pid.into_iter().chain(spec.other_pids.clone()))?;
    let base = Instant::now();

    let mut sub_tasks = JoinSet::new();
    for (s, (conn, links)) in subs.into_iter().zip(sub_links).enumerate() {
        let (progress, stop) = (progress.clone(), stop.clone());
        sub_tasks.spawn(async move {
            let outcome = subscribe_loop(
                conn,
                links,
                progress,
                base,
                max_samples,
                record_latency,
                stop,
            )
            .await;
            (s, outcome)
        });
    }
    let mut pub_tasks = JoinSet::new();
    let per_publisher = spec.messages / publishers as u64;
    let remainder = spec.messages % publishers as u64;
    for (p, (conn, links)) in pubs.into_iter().zip(pub_links).enumerate() {
        let messages = per_publisher + u64::from((p as u64) < remainder);
        let topic = shape.topic(&run, p);
        let (spec, stop) = (spec.clone(), stop.clone());
        pub_tasks.spawn(async move {
            publish_loop(p, conn, topic, messages, spec, links, base, stop).await
        });
    }

    // Publishing ends on the message count or the duration cap; the
    // publisher tasks then wait for the stop signal, holding their
    // connections, so they end (and count) at the coordinator's word.
    // Every message reaches each subscriber of its topic.
    let fanout = match shape {
        Shape::FanOut(n) => n as u64,
        Shape::Pairs(_) | Shape::FanIn(_) => 1,
    };
    let publish_deadline = base + spec.duration;
    let hard_stop = publish_deadline + spec.drain;
    let mut last_progress = (0u64, Instant::now());
    loop {
        let received = progress.received.load(Ordering::Relaxed);
        let now = Instant::now();
        if received != last_progress.0 {
            last_progress = (received, now);
        }
        let quiet = now.duration_since(last_progress.1);
        // Done: everything arrived; or the cap passed and nothing moved for
        // `drain`; or nothing moved for `drain` at all after deliveries had
        // started (lost messages hold their permits, so publishers stall).
        if received >= spec.messages * fanout
            || now >= hard_stop
            || (now >= publish_deadline && quiet >= spec.drain)
            || (received > 0 && quiet >= spec.drain)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let broker_cpu_s = cpu.map(|cpu| cpu.seconds()).transpose()?;
    let _ = stop_tx.send(true);

    let mut sent = 0u64;
    let mut acked = 0u64;
    let mut connections = Vec::new();
    let mut errors = Vec::new();
    while let Some(joined) = pub_tasks.join_next().await {
        match joined.context("publisher panicked")? {
            Ok(outcome) => {
                sent += outcome.sent;
                acked += outcome.acked;
                connections.push(outcome.connection);
            }
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    let expected = sent * fanout;
    let mut received = 0u64;
    let mut latencies = Vec::new();
    while let Some(joined) = sub_tasks.join_next().await {
        let (_s, outcome) = joined.context("subscriber panicked")?;
        match outcome {
            Ok(outcome) => {
                received += outcome.received;
                latencies.extend(outcome.latencies_ns);
                connections.push(outcome.connection);
            }
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    close_all(connections).await;

    let elapsed = Duration::from_nanos(progress.last_receive_ns.load(Ordering::Relaxed));
    let delivered_per_s = per_second(received, elapsed);
    let lost = expected.saturating_sub(received);
    let mode = if spec.rate.is_some() {
        "latency"
    } else {
        shape.name()
    };
    let qos = spec.qos as u8;
    let mut record = json!({
        "label": label,
        "mode": mode,
        "shape": shape.name(),
        "qos": qos,
        "publishers": publishers,
        "subscribers": subscribers,
        "payload_bytes": spec.payload_bytes,
        "window": link_window.map(|w| w * shape.publishers_per_subscriber()).unwrap_or(0),
        "messages": spec.messages,
        "published": sent,
        "acked": acked,
        "expected": expected,
        "delivered": received,
        "lost": lost,
        "foreign": progress.foreign.load(Ordering::Relaxed),
        "out_of_order": progress.out_of_order.load(Ordering::Relaxed),
        "seconds": round(elapsed.as_secs_f64()),
        "delivered_per_s": round(delivered_per_s),
        "hit_duration_cap": sent < spec.messages,
        "persistent_subscribers": spec.persistent,
        "broker_cpu_s": broker_cpu_s.map(round),
        "delivered_per_broker_cpu_s": per_cpu_second(received, broker_cpu_s).map(round),
        "errors": errors,
    });
    let sessions = if spec.persistent { " persistent" } else { "" };
    let mut human = format!(
        "[{label}] {mode} qos{qos}{sessions} {publishers}→{subscribers}: {:.0} msgs/s delivered ({received} of {expected}, lost {lost}) in {:.2} s",
        delivered_per_s,
        elapsed.as_secs_f64()
    );
    if let (Some(cpu), Some(per_cpu)) = (broker_cpu_s, per_cpu_second(received, broker_cpu_s)) {
        human.push_str(&format!(
            "; broker CPU {cpu:.2} s, {per_cpu:.0} msgs per CPU-second"
        ));
    }
    if let Some(rate) = spec.rate {
        record["rate_per_s"] = json!(rate);
        if let Some(p) = Percentiles::of(&mut latencies) {
            record["latency"] = p.to_json();
            human.push_str(&format!(
                "; latency at {rate:.0}/s: p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs ({} samples)",
                p.p50_us, p.p99_us, p.max_us, p.samples
            ));
        }
    }
    if !record["errors"].as_array().is_some_and(|e| e.is_empty()) {
        human.push_str(&format!("; ERRORS: {}", record["errors"]));
    }
    Ok((record, human))
}

/// DISCONNECTs every connection, all at once, each within its own timeout.
pub async fn close_all(connections: Vec<Connection>) {
    let mut closing = JoinSet::new();
    for conn in connections {
        closing.spawn(conn.disconnect());
    }
    while closing.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_and_pad() {
        let payload = stamp(7, 42, 123_456, 64);
        assert_eq!(payload.len(), 64);
        assert_eq!(read_stamp(&payload), Some((7, 42, 123_456)));
        assert_eq!(stamp(1, 2, 3, 0).len(), STAMP_BYTES);
        assert_eq!(read_stamp(b"short"), None);
    }

    #[test]
    fn shapes_wire_publishers_to_subscribers() {
        assert_eq!(Shape::Pairs(3).subscribers_of(2), vec![2]);
        assert_eq!(Shape::FanIn(3).subscribers_of(2), vec![0]);
        assert_eq!(Shape::FanOut(3).subscribers_of(0), vec![0, 1, 2]);
        assert_eq!(
            (Shape::FanIn(5).publishers(), Shape::FanIn(5).subscribers()),
            (5, 1)
        );
        assert_eq!(Shape::FanIn(4).filter("r", 0), "bench/r/in/+");
        assert!(roost_topic_like_match(
            &Shape::FanIn(4).filter("r", 0),
            &Shape::FanIn(4).topic("r", 3)
        ));
    }

    /// `+` in the last level only, which is all the shapes use.
    fn roost_topic_like_match(filter: &str, topic: &str) -> bool {
        match filter.strip_suffix('+') {
            Some(prefix) => topic.starts_with(prefix) && !topic[prefix.len()..].contains('/'),
            None => filter == topic,
        }
    }

    #[tokio::test]
    async fn take_waits_for_one_then_takes_what_is_free() {
        let s = Semaphore::new(5);
        let far = Instant::now() + Duration::from_secs(5);
        assert_eq!(take(&s, 3, far).await, Some(3));
        assert_eq!(take(&s, 10, far).await, Some(2));
        let soon = Instant::now() + Duration::from_millis(20);
        assert_eq!(take(&s, 1, soon).await, None);
    }
}
