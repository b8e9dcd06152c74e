//! `roost-bench`: a load generator for MQTT brokers over mutual TLS, used by
//! `scripts/bench` to measure Roost, Mosquitto and rumqttd under the same
//! loads.
//!
//! It only ever connects to loopback addresses, and every run is bounded:
//! by a message (or connection) count, by a duration cap, and by a watchdog
//! that ends the process if setup or teardown hangs. Each run prints one
//! JSON line on stdout and one human-readable line on stderr.
#![forbid(unsafe_code)]

mod connects;
mod flow;
mod idle;
mod jobs;
mod mqtt;
mod report;
mod target;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};
use roost_bench::process;
use roost_mqtt::QoS;
use std::time::Duration;

/// The longest measured phase a run may ask for.
const MAX_DURATION_SECS: f64 = 600.0;
/// The most connections one run may open (the machine's file limit).
const MAX_CONNECTIONS: usize = 20_000;
/// The most messages one run may publish.
const MAX_MESSAGES: u64 = 100_000_000;
/// Time allowed for connecting and subscribing before the measured phase,
/// and for closing after it, on top of the duration cap.
const SETUP_ALLOWANCE: Duration = Duration::from_secs(120);

#[derive(Parser)]
#[command(
    name = "roost-bench",
    about = "MQTT load generator over mutual TLS (loopback only, bounded runs)"
)]
struct Cli {
    #[command(flatten)]
    target: target::TargetArgs,
    /// Names the broker in the output (e.g. roost, mosquitto, rumqttd).
    #[arg(long, default_value = "broker")]
    label: String,
    /// The broker's process id: message and connect loads report the CPU
    /// time it used in the measured phase (from `/proc/<pid>/stat`), the
    /// idle load its resident memory (VmRSS).
    #[arg(long)]
    broker_pid: Option<u32>,
    /// Other processes whose CPU time message loads charge too (the other
    /// nodes of a cluster, its NATS server); repeat for each.
    #[arg(long)]
    also_pid: Vec<u32>,
    /// Cap on the measured phase, in seconds.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Worker threads of the load generator's runtime.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// N publisher/subscriber pairs, each on its own topic.
    Pairs {
        #[arg(long, default_value_t = 10)]
        pairs: usize,
        #[command(flatten)]
        flow: FlowArgs,
    },
    /// N publishers, one subscriber to all their topics (`+`).
    FanIn {
        #[arg(long, default_value_t = 10)]
        publishers: usize,
        #[command(flatten)]
        flow: FlowArgs,
    },
    /// One publisher, N subscribers to its topic.
    FanOut {
        #[arg(long, default_value_t = 10)]
        subscribers: usize,
        #[command(flatten)]
        flow: FlowArgs,
    },
    /// Pairs publishing at a fixed total rate; publish-to-delivery latency.
    Latency {
        #[arg(long, default_value_t = 10)]
        pairs: usize,
        /// Messages per second over all publishers.
        #[arg(long, default_value_t = 2000.0)]
        rate: f64,
        #[command(flatten)]
        flow: FlowArgs,
    },
    /// Full mutual-TLS handshakes with CONNECT/CONNACK per second.
    Connects {
        /// Connections attempted in total.
        #[arg(long, default_value_t = 10_000)]
        count: u64,
        /// Clients connecting at the same time.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
    },
    /// N devices take one job each through start-next and SUCCEEDED
    /// (Roost's jobs API); the job is created by the caller once
    /// --ready-file appears.
    Jobs {
        /// Devices (things `{prefix}0` …).
        #[arg(long, default_value_t = 1000)]
        things: usize,
        #[arg(long, default_value = "jobs-bench-")]
        prefix: String,
        /// Handshakes in flight while the devices connect.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Written once every device listens for its job.
        #[arg(long)]
        ready_file: std::path::PathBuf,
    },
    /// Open N idle TLS MQTT connections and hold them; read the broker's memory.
    Idle {
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// Handshakes in flight while opening.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Seconds to wait after the last CONNACK before reading memory.
        #[arg(long, default_value_t = 2.0)]
        settle: f64,
        /// Seconds to hold the connections after reading memory.
        #[arg(long, default_value_t = 1.0)]
        hold: f64,
    },
}

#[derive(Args, Clone)]
struct FlowArgs {
    /// QoS of the publishes and subscriptions: 0 or 1.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=1))]
    qos: u8,
    /// Messages published in total.
    #[arg(long, default_value_t = 200_000)]
    messages: u64,
    /// Payload size in bytes (at least 20: the stamp).
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Messages on their way to one subscriber (end-to-end flow control); 0: none.
    #[arg(long, default_value_t = 500)]
    window: usize,
    /// QoS 1 PUBLISHes one publisher may have awaiting PUBACK.
    #[arg(long, default_value_t = 100)]
    inflight: usize,
    /// Seconds to wait for the last deliveries once publishing ends.
    #[arg(long, default_value_t = 3.0)]
    drain: f64,
    /// Handshakes in flight while the clients connect.
    #[arg(long, default_value_t = 32)]
    connect_concurrency: usize,
    /// Subscribers keep persistent sessions (clean session off, MQTT 5
    /// session expiry 1 h) under fixed client ids, `bench-persistent-s<n>`:
    /// every QoS 1 message they are sent becomes durable state.
    #[arg(long)]
    persistent: bool,
}

impl FlowArgs {
    fn spec(
        &self,
        shape: flow::Shape,
        rate: Option<f64>,
        duration: Duration,
        broker_pid: Option<u32>,
    ) -> flow::FlowSpec {
        flow::FlowSpec {
            shape,
            qos: if self.qos == 1 {
                QoS::AtLeastOnce
            } else {
                QoS::AtMostOnce
            },
            messages: self.messages,
            payload_bytes: self.payload,
            window: self.window,
            inflight: self.inflight,
            rate,
            duration,
            drain: Duration::from_secs_f64(self.drain.clamp(0.1, 60.0)),
            connect_concurrency: self.connect_concurrency,
            persistent: self.persistent,
            broker_pid,
            other_pids: Vec::new(),
            subscribe_to: None,
        }
    }
}

fn check_bounds(cli: &Cli) -> Result<()> {
    if !(cli.duration > 0.0 && cli.duration <= MAX_DURATION_SECS) {
        bail!("--duration must be in (0, {MAX_DURATION_SECS}] seconds");
    }
    let (connections, flow) = match &cli.mode {
        Mode::Pairs { pairs, flow } | Mode::Latency { pairs, flow, .. } => (2 * pairs, Some(flow)),
        Mode::FanIn { publishers, flow } => (publishers + 1, Some(flow)),
        Mode::FanOut { subscribers, flow } => (subscribers + 1, Some(flow)),
        Mode::Connects { concurrency, .. } => (*concurrency, None),
        Mode::Idle { connections, .. } => (*connections, None),
        Mode::Jobs { things, .. } => (*things, None),
    };
    if connections == 0 || connections > MAX_CONNECTIONS {
        bail!("a run opens between 1 and {MAX_CONNECTIONS} connections (asked for {connections})");
    }
    if let Some(flow) = flow {
        if flow.messages == 0 || flow.messages > MAX_MESSAGES {
            bail!("--messages must be between 1 and {MAX_MESSAGES}");
        }
        if flow.payload > roost_mqtt::AWS_MAX_PAYLOAD_BYTES {
            bail!(
                "--payload is at most {} bytes",
                roost_mqtt::AWS_MAX_PAYLOAD_BYTES
            );
        }
    }
    if let Mode::Latency { rate, .. } = &cli.mode {
        if !(*rate > 0.0 && *rate <= 1_000_000.0) {
            bail!("--rate must be in (0, 1000000] messages per second");
        }
    }
    if let Mode::Connects { count, .. } = &cli.mode {
        if *count == 0 || *count > MAX_MESSAGES {
            bail!("--count must be between 1 and {MAX_MESSAGES}");
        }
    }
    if let Mode::Idle { settle, hold, .. } = &cli.mode {
        let keep_alive = f64::from(mqtt::KEEP_ALIVE_SECS);
        if !(*settle >= 0.0 && *hold >= 0.0 && settle + hold < keep_alive) {
            bail!("--settle and --hold are non-negative and together under the {keep_alive} s keep alive");
        }
    }
    Ok(())
}

async fn run(cli: Cli) -> Result<()> {
    let target = target::Target::new(&cli.target)?;
    let duration = Duration::from_secs_f64(cli.duration);
    let label = cli.label.as_str();
    let pid = cli.broker_pid;
    let subscribe_to = match cli.target.subscribe_broker {
        Some(addr) => Some(target.at(&cli.target, addr)?),
        None => None,
    };
    // Where the subscribers are, and every process the load costs.
    let spread = |mut spec: flow::FlowSpec| {
        spec.subscribe_to = subscribe_to.clone();
        spec.other_pids = cli.also_pid.clone();
        spec
    };
    let (record, human) = match cli.mode {
        Mode::Pairs { pairs, flow } => {
            let spec = flow.spec(flow::Shape::Pairs(pairs), None, duration, pid);
            flow::run(&target, spread(spec), label).await?
        }
        Mode::FanIn { publishers, flow } => {
            let spec = flow.spec(flow::Shape::FanIn(publishers), None, duration, pid);
            flow::run(&target, spread(spec), label).await?
        }
        Mode::FanOut { subscribers, flow } => {
            let spec = flow.spec(flow::Shape::FanOut(subscribers), None, duration, pid);
            flow::run(&target, spread(spec), label).await?
        }
        Mode::Latency { pairs, rate, flow } => {
            let spec = flow.spec(flow::Shape::Pairs(pairs), Some(rate), duration, pid);
            flow::run(&target, spread(spec), label).await?
        }
        Mode::Connects { count, concurrency } => {
            let spec = connects::ConnectsSpec {
                count,
                concurrency,
                duration,
                broker_pid: pid,
            };
            connects::run(&target, spec, label).await?
        }
        Mode::Jobs {
            things,
            prefix,
            concurrency,
            ready_file,
        } => {
            let spec = jobs::JobsSpec {
                things,
                prefix,
                concurrency,
                ready_file,
                duration,
                broker_pid: pid,
            };
            jobs::run(&target, spec, label).await?
        }
        Mode::Idle {
            connections,
            concurrency,
            settle,
            hold,
        } => {
            let spec = idle::IdleSpec {
                connections,
                concurrency,
                settle: Duration::from_secs_f64(settle),
                hold: Duration::from_secs_f64(hold),
                broker_pid: pid,
                duration,
            };
            idle::run(&target, spec, label).await?
        }
    };
    report::emit(&record, &human);
    Ok(())
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Err(e) = check_bounds(&cli) {
        eprintln!("roost-bench: {e:#}");
        return std::process::ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.clamp(1, 64))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("roost-bench: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // The watchdog: the measured phase is capped inside each load; this
    // bounds everything around it (connecting, draining, closing).
    let watchdog = Duration::from_secs_f64(cli.duration) + SETUP_ALLOWANCE;
    let result = runtime.block_on(async {
        match tokio::time::timeout(watchdog, run(cli)).await {
            Ok(result) => result,
            Err(_) => bail!("the run exceeded its watchdog of {watchdog:?}: stopped"),
        }
    });
    // Tasks still holding connections are dropped, not awaited.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("roost-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
