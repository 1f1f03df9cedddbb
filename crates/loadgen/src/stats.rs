//! What a run measured: an HDR histogram of latencies (microseconds, 3 significant
//! digits, up to an hour) and the count of answers by status.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Status recorded for a request that got no HTTP answer (connection refused, timeout).
pub const NO_ANSWER: u16 = 0;

#[derive(Debug, Clone)]
pub struct Stats {
    latency: Histogram<u64>,
    by_status: BTreeMap<u16, u64>,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

/// Percentiles of a run, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Stats {
    pub fn new() -> Self {
        Self {
            // 1 µs to 1 h at 3 significant digits: a few hundred KiB, exact enough.
            latency: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!())),
            by_status: BTreeMap::new(),
        }
    }

    /// One answer: its status (0 without one) and how long it took.
    pub fn record(&mut self, status: u16, latency: Duration) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        // Beyond the histogram's bound is recorded at the bound.
        self.latency.saturating_record(micros);
        *self.by_status.entry(status).or_default() += 1;
    }

    pub fn merge(&mut self, other: &Stats) {
        let _ = self.latency.add(&other.latency);
        for (status, n) in &other.by_status {
            *self.by_status.entry(*status).or_default() += n;
        }
    }

    pub fn count(&self) -> u64 {
        self.by_status.values().sum()
    }

    /// Answers that are not 2xx or 3xx (no answer included).
    pub fn errors(&self) -> u64 {
        self.by_status
            .iter()
            .filter(|(s, _)| !(200..400).contains(*s))
            .map(|(_, n)| n)
            .sum()
    }

    pub fn error_rate(&self) -> f64 {
        match self.count() {
            0 => 0.0,
            n => self.errors() as f64 / n as f64,
        }
    }

    pub fn by_status(&self) -> &BTreeMap<u16, u64> {
        &self.by_status
    }

    pub fn percentiles(&self) -> Percentiles {
        let ms = |q: f64| self.latency.value_at_quantile(q) as f64 / 1000.0;
        Percentiles {
            p50: ms(0.50),
            p90: ms(0.90),
            p95: ms(0.95),
            p99: ms(0.99),
            max: self.latency.max() as f64 / 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut stats = Stats::new();
        for ms in 1..=1000u64 {
            stats.record(200, Duration::from_millis(ms));
        }
        let p = stats.percentiles();
        let close = |a: f64, b: f64| (a - b).abs() <= b * 0.002 + 0.01;
        assert!(close(p.p50, 500.0), "{p:?}");
        assert!(close(p.p90, 900.0), "{p:?}");
        assert!(close(p.p95, 950.0), "{p:?}");
        assert!(close(p.p99, 990.0), "{p:?}");
        assert!(close(p.max, 1000.0), "{p:?}");
    }

    #[test]
    fn errors_are_what_is_not_2xx_or_3xx() {
        let mut stats = Stats::new();
        for status in [200, 201, 304, 404, 503, NO_ANSWER] {
            stats.record(status, Duration::from_millis(1));
        }
        assert_eq!(stats.count(), 6);
        assert_eq!(stats.errors(), 3);
        assert!((stats.error_rate() - 0.5).abs() < 1e-12);
    }

    #[test]
    fn merging_adds_counts_and_keeps_the_tail() {
        let mut a = Stats::new();
        let mut b = Stats::new();
        a.record(200, Duration::from_millis(1));
        b.record(503, Duration::from_secs(2));
        a.merge(&b);
        assert_eq!(a.count(), 2);
        assert_eq!(a.by_status().get(&503), Some(&1));
        assert!(a.percentiles().max >= 1999.0);
    }

    #[test]
    fn huge_latencies_are_clamped_not_lost() {
        let mut stats = Stats::new();
        stats.record(200, Duration::from_secs(10_000));
        assert_eq!(stats.count(), 1);
        assert!(stats.percentiles().max >= 3_599_000.0);
    }
}
