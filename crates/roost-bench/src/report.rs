//! What a run prints: one JSON object on one line (stdout), for scripts, and
//! one sentence (stderr), for people.

use serde_json::{json, Value};
use std::time::Duration;

/// Latency percentiles from raw samples in nanoseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Percentiles {
    pub samples: usize,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

impl Percentiles {
    /// `None` when there are no samples. Sorts `samples`.
    pub fn of(samples: &mut [u64]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        // Nearest rank: the smallest sample with at least q of them at or below it.
        let rank = |q: f64| {
            let index = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1;
            samples[index] as f64 / 1_000.0
        };
        Some(Self {
            samples: samples.len(),
            p50_us: rank(0.50),
            p90_us: rank(0.90),
            p99_us: rank(0.99),
            p999_us: rank(0.999),
            max_us: rank(1.0),
        })
    }

    pub fn to_json(&self) -> Value {
        json!({
            "samples": self.samples,
            "p50_us": round(self.p50_us),
            "p90_us": round(self.p90_us),
            "p99_us": round(self.p99_us),
            "p999_us": round(self.p999_us),
            "max_us": round(self.max_us),
        })
    }
}

/// Two decimals are plenty for every figure we print.
pub fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

/// Prints the machine-readable line on stdout and the human one on stderr.
pub fn emit(record: &Value, human: &str) {
    println!("{record}");
    eprintln!("{human}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut samples: Vec<u64> = (1..=1000).map(|us| us * 1_000).collect();
        samples.reverse();
        let p = Percentiles::of(&mut samples).unwrap();
        assert_eq!(p.samples, 1000);
        assert_eq!(p.p50_us, 500.0);
        assert_eq!(p.p99_us, 990.0);
        assert_eq!(p.p999_us, 999.0);
        assert_eq!(p.max_us, 1000.0);
        assert!(Percentiles::of(&mut []).is_none());
        let one = Percentiles::of(&mut [7_000]).unwrap();
        assert_eq!((one.p50_us, one.p99_us), (7.0, 7.0));
    }
}
