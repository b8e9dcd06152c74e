//! What `/proc` says about the broker under test: its resident memory and
//! the CPU time it has used, so that a load can report memory per idle
//! connection and messages per broker CPU-second.
//!
//! Reads only; never signals or otherwise touches the process.

use anyhow::{Context, Result};
use std::time::Duration;

/// Clock ticks per second in `/proc/<pid>/stat` (`USER_HZ`): 100 on every
/// Linux architecture Roost is built for (x86-64, AArch64). The figures are
/// therefore whole hundredths of a second: a run needs to last a second or
/// more for its CPU time to be read to a few percent.
const USER_HZ: u64 = 100;

/// VmRSS of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_vm_rss(&status).with_context(|| format!("no VmRSS line in {path}"))
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse().ok())
}

/// CPU time (user and system, all threads) that `pid` has used so far.
pub fn cpu_time(pid: u32) -> Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let ticks = parse_cpu_ticks(&stat).with_context(|| format!("no utime/stime in {path}"))?;
    Ok(Duration::from_millis(ticks * 1000 / USER_HZ))
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line. The
/// command name (field 2) is in parentheses and may itself contain spaces
/// and parentheses, so the fields are counted from the last `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, after_name) = stat.rsplit_once(')')?;
    // After the name: state is field 3, so utime (14) is the 12th.
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The broker's CPU time over one measured phase: one process, or the
/// sum of several (a cluster's nodes and its NATS server).
pub struct CpuMeter {
    started: Vec<(u32, Duration)>,
}

impl CpuMeter {
    /// Starts measuring `pids`; `None` without any.
    pub fn start(pids: impl IntoIterator<Item = u32>) -> Result<Option<Self>> {
        let started = pids
            .into_iter()
            .map(|pid| Ok((pid, cpu_time(pid)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok((!started.is_empty()).then_some(Self { started }))
    }

    /// CPU seconds used since `start`, by all of them.
    pub fn seconds(&self) -> Result<f64> {
        self.started.iter().try_fold(0.0, |sum, (pid, start)| {
            Ok(sum + cpu_time(*pid)?.saturating_sub(*start).as_secs_f64())
        })
    }
}

/// `count` per CPU-second, when any CPU time was measured.
pub fn per_cpu_second(count: u64, cpu_seconds: Option<f64>) -> Option<f64> {
    cpu_seconds.filter(|s| *s > 0.0).map(|s| count as f64 / s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_rss_from_proc_status() {
        let status = "Name:\troost\nVmPeak:\t  100 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(12345));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }

    #[test]
    fn reads_utime_and_stime_past_a_name_with_spaces_and_parens() {
        // Fields 14 and 15 are 1234 and 56; the name holds ") 7 8 (".
        let stat = "4242 (a) 7 8 (b) S 1 4242 4242 0 -1 4194560 900 0 0 0 1234 56 0 0 20 0 3 0 99";
        assert_eq!(parse_cpu_ticks(stat), Some(1290));
        assert_eq!(parse_cpu_ticks("4242 (x) S 1 2"), None);
        assert_eq!(parse_cpu_ticks("no name here"), None);
    }

    #[test]
    fn reads_our_own_memory_and_cpu_time() {
        let pid = std::process::id();
        assert!(rss_kib(pid).unwrap() > 0);
        let meter = CpuMeter::start(Some(pid)).unwrap().unwrap();
        // Spin until a tick is counted (10 ms of CPU), within a generous cap.
        let spin = std::time::Instant::now();
        while meter.seconds().unwrap() == 0.0 && spin.elapsed() < Duration::from_secs(20) {
            std::hint::black_box(spin.elapsed());
        }
        assert!(meter.seconds().unwrap() > 0.0);
        assert!(CpuMeter::start(None::<u32>).unwrap().is_none());
    }

    #[test]
    fn counts_per_cpu_second_only_with_cpu_time() {
        assert_eq!(per_cpu_second(500, Some(2.0)), Some(250.0));
        assert_eq!(per_cpu_second(500, Some(0.0)), None);
        assert_eq!(per_cpu_second(500, None), None);
    }
}
