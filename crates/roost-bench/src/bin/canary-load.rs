//! `canary-load`: an attacker's load on a honeypot (roost-canary, or a peer
//! such as OpenCanary), used by `scripts/bench-canary`.
//!
//! Workers open connections as fast as they are answered, each one attempt:
//! `tcp` sends a line and reads until the honeypot closes; `http` posts a
//! login form and reads the answer. An attempt counts once it was answered
//! (roost-canary answers only after the attempt is on disk). Sources cycle
//! over `--sources` loopback addresses (127.2.x.y) so a run can be one
//! attacker or thousands. Loopback only; bounded by `--duration`.
//!
//! Prints one JSON line: attempts, errors, seconds, the honeypot's resident
//! memory before and at its peak, and its CPU time (with `--pid`).
#![forbid(unsafe_code)]

use anyhow::{bail, Result};
use clap::{Parser, ValueEnum};
use roost_bench::{parse_loopback, process};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

/// The longest run one invocation may ask for.
const MAX_DURATION_SECS: f64 = 600.0;
/// The most connections in flight.
const MAX_CONCURRENCY: usize = 1024;
/// One attempt's answer is read up to this many bytes.
const MAX_ANSWER: usize = 64 * 1024;
/// An attempt not answered within this is an error.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Kind {
    Tcp,
    Http,
}

#[derive(Parser)]
#[command(
    name = "canary-load",
    about = "An attacker's load on a honeypot (loopback only)"
)]
struct Cli {
    /// The honeypot service's address; loopback only.
    #[arg(long, value_parser = parse_loopback)]
    target: SocketAddr,
    #[arg(long, value_enum, default_value = "tcp")]
    kind: Kind,
    /// Connections in flight.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Distinct source addresses (127.2.x.y) the attempts come from.
    #[arg(long, default_value_t = 1)]
    sources: u32,
    /// Stop after this many attempts.
    #[arg(long)]
    max_attempts: Option<u64>,
    /// The honeypot's process id: its memory and CPU time are reported.
    #[arg(long)]
    pid: Option<u32>,
    /// `http`: the path the login form is posted to.
    #[arg(long, default_value = "/login")]
    path: String,
    /// Names the honeypot in the output.
    #[arg(long, default_value = "honeypot")]
    label: String,
}

fn source(i: u64, sources: u32) -> Ipv4Addr {
    let n = (i % u64::from(sources.max(1))) as u32;
    Ipv4Addr::new(127, 2, (n / 250) as u8, (n % 250 + 1) as u8)
}

async fn attempt(kind: Kind, target: SocketAddr, path: &str, from: Ipv4Addr, n: u64) -> Result<()> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from.into(), 0))?;
    let mut stream = socket.connect(target).await?;
    match kind {
        Kind::Tcp => {
            stream
                .write_all(format!("attempt {n}\r\n").as_bytes())
                .await?;
            stream.shutdown().await?;
        }
        Kind::Http => {
            let body = format!("username=admin&password=guess{n}");
            let request = format!(
                "POST {path} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: canary-load\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(request.as_bytes()).await?;
        }
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 || answer.len() >= MAX_ANSWER {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    if matches!(kind, Kind::Http) && !answer.starts_with(b"HTTP/1.") {
        bail!("not an HTTP answer");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    if !(cli.duration > 0.0 && cli.duration <= MAX_DURATION_SECS) {
        bail!("--duration must be in (0, {MAX_DURATION_SECS}] seconds");
    }
    if cli.concurrency == 0 || cli.concurrency > MAX_CONCURRENCY {
        bail!("--concurrency must be in 1..={MAX_CONCURRENCY}");
    }
    let rss_before = cli.pid.map(process::rss_kib).transpose()?;
    let cpu = process::CpuMeter::start(cli.pid)?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(cli.duration);
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let limit = cli.max_attempts.unwrap_or(u64::MAX);
    let mut workers = Vec::new();
    for _ in 0..cli.concurrency {
        let (next, done, errors) = (next.clone(), done.clone(), errors.clone());
        let (kind, target, sources, path) = (cli.kind, cli.target, cli.sources, cli.path.clone());
        workers.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= limit {
                    break;
                }
                let one = attempt(kind, target, &path, source(n, sources), n);
                match tokio::time::timeout(ATTEMPT_TIMEOUT, one).await {
                    Ok(Ok(())) => done.fetch_add(1, Ordering::Relaxed),
                    _ => errors.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    // The honeypot's peak memory, sampled while the load runs.
    let mut rss_peak = rss_before;
    let all = async {
        for w in workers {
            let _ = w.await;
        }
    };
    tokio::pin!(all);
    loop {
        tokio::select! {
            _ = &mut all => break,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                if let (Some(pid), Some(peak)) = (cli.pid, rss_peak.as_mut()) {
                    if let Ok(rss) = process::rss_kib(pid) {
                        *peak = (*peak).max(rss);
                    }
                }
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let attempts = done.load(Ordering::Relaxed);
    let cpu_seconds = cpu.map(|c| c.seconds()).transpose()?;
    let result = serde_json::json!({
        "label": cli.label,
        "kind": format!("{:?}", cli.kind).to_lowercase(),
        "concurrency": cli.concurrency,
        "sources": cli.sources,
        "attempts": attempts,
        "errors": errors.load(Ordering::Relaxed),
        "seconds": seconds,
        "attempts_per_sec": attempts as f64 / seconds,
        "rss_before_kib": rss_before,
        "rss_peak_kib": rss_peak,
        "cpu_seconds": cpu_seconds,
    });
    println!("{result}");
    Ok(())
}
