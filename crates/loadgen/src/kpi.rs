//! Verdicts against KPIs: the design document's (p95 < 500 ms, > 1000 req/s, errors <
//! 0.1%) unless thresholds are given.

use serde::Serialize;

use crate::stats::Percentiles;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Kpis {
    /// p95 latency must be below this, in ms.
    pub p95_ms: f64,
    /// Throughput must be above this, in requests per second.
    pub min_rps: f64,
    /// The share of errors must be below this (0.001 = 0.1%).
    pub max_error_rate: f64,
}

impl Default for Kpis {
    /// The design document's KPIs.
    fn default() -> Self {
        Self {
            p95_ms: 500.0,
            min_rps: 1000.0,
            max_error_rate: 0.001,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub target: String,
    pub measured: String,
    pub pass: bool,
}

/// Each KPI checked against a run.
pub fn verdict(kpis: &Kpis, percentiles: &Percentiles, rps: f64, error_rate: f64) -> Vec<Check> {
    vec![
        Check {
            name: "p95 latency",
            target: format!("< {} ms", kpis.p95_ms),
            measured: format!("{:.1} ms", percentiles.p95),
            pass: percentiles.p95 < kpis.p95_ms,
        },
        Check {
            name: "throughput",
            target: format!("> {} req/s", kpis.min_rps),
            measured: format!("{rps:.0} req/s"),
            pass: rps > kpis.min_rps,
        },
        Check {
            name: "errors",
            target: format!("< {:.3}%", kpis.max_error_rate * 100.0),
            measured: format!("{:.3}%", error_rate * 100.0),
            pass: error_rate < kpis.max_error_rate,
        },
    ]
}

/// Whether every check passed.
pub fn all_pass(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p95(ms: f64) -> Percentiles {
        Percentiles {
            p50: ms / 2.0,
            p90: ms,
            p95: ms,
            p99: ms,
            max: ms,
        }
    }

    #[test]
    fn the_design_documents_kpis_by_default() {
        let kpis = Kpis::default();
        assert!(all_pass(&verdict(&kpis, &p95(120.0), 2500.0, 0.0)));
        let slow = verdict(&kpis, &p95(500.0), 2500.0, 0.0);
        assert!(!slow[0].pass, "p95 must be below, not at, 500 ms");
        assert!(
            !all_pass(&verdict(&kpis, &p95(10.0), 1000.0, 0.0)),
            "above 1000, not at"
        );
        assert!(
            !all_pass(&verdict(&kpis, &p95(10.0), 5000.0, 0.001)),
            "below 0.1%"
        );
        assert!(all_pass(&verdict(&kpis, &p95(10.0), 5000.0, 0.0009)));
    }

    #[test]
    fn given_thresholds_replace_the_defaults() {
        let kpis = Kpis {
            p95_ms: 10.0,
            min_rps: 7500.0,
            max_error_rate: 0.0,
        };
        let checks = verdict(&kpis, &p95(9.0), 8000.0, 0.0);
        assert!(
            !all_pass(&checks),
            "0 errors allowed means strictly below 0"
        );
        assert_eq!(checks[1].measured, "8000 req/s");
    }
}
