//! A run's report: the table people read and the JSON machines keep.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::kpi::Check;
use crate::stats::{NO_ANSWER, Percentiles, Stats};

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    /// `open` (a fixed arrival rate) or `closed` (a fixed number of clients).
    pub mode: String,
    /// Seconds measured (after the warm-up).
    pub seconds: f64,
    pub requests: u64,
    pub rps: f64,
    pub latency_ms: Percentiles,
    pub errors: u64,
    pub error_rate: f64,
    /// Answers by HTTP status; `0` is no answer at all.
    pub by_status: BTreeMap<u16, u64>,
    pub kpis: Vec<Check>,
    pub pass: bool,
}

impl Report {
    pub fn new(scenario: &str, mode: &str, seconds: f64, stats: &Stats, kpis: Vec<Check>) -> Self {
        let requests = stats.count();
        let rps = if seconds > 0.0 {
            requests as f64 / seconds
        } else {
            0.0
        };
        let pass = crate::kpi::all_pass(&kpis);
        Self {
            scenario: scenario.to_owned(),
            mode: mode.to_owned(),
            seconds,
            requests,
            rps,
            latency_ms: stats.percentiles(),
            errors: stats.errors(),
            error_rate: stats.error_rate(),
            by_status: stats.by_status().clone(),
            kpis,
            pass,
        }
    }

    /// The table: throughput and latency, answers by status, and each KPI's verdict.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let l = &self.latency_ms;
        let _ = writeln!(
            out,
            "scenario {} ({} loop), {:.1} s measured",
            self.scenario, self.mode, self.seconds
        );
        let _ = writeln!(
            out,
            "{:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}",
            "requests", "req/s", "p50 ms", "p90 ms", "p95 ms", "p99 ms", "max ms", "errors"
        );
        let _ = writeln!(
            out,
            "{:>10} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>7.3}%",
            self.requests,
            self.rps,
            l.p50,
            l.p90,
            l.p95,
            l.p99,
            l.max,
            self.error_rate * 100.0
        );
        let statuses: Vec<String> = self
            .by_status
            .iter()
            .map(|(s, n)| {
                if *s == NO_ANSWER {
                    format!("no answer: {n}")
                } else {
                    format!("{s}: {n}")
                }
            })
            .collect();
        let _ = writeln!(out, "by status: {}", statuses.join(", "));
        for check in &self.kpis {
            let _ = writeln!(
                out,
                "  {} {:<12} target {:<16} measured {}",
                if check.pass { "PASS" } else { "FAIL" },
                check.name,
                check.target,
                check.measured
            );
        }
        let _ = writeln!(out, "verdict: {}", if self.pass { "PASS" } else { "FAIL" });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kpi::{Kpis, verdict};
    use std::time::Duration;

    #[test]
    fn the_table_and_json_carry_the_numbers_and_the_verdict() {
        let mut stats = Stats::new();
        for _ in 0..99 {
            stats.record(200, Duration::from_millis(5));
        }
        stats.record(NO_ANSWER, Duration::from_secs(1));
        let checks = verdict(
            &Kpis::default(),
            &stats.percentiles(),
            100.0,
            stats.error_rate(),
        );
        let report = Report::new("health", "open", 1.0, &stats, checks);
        assert_eq!(report.requests, 100);
        assert!(
            !report.pass,
            "100 req/s and 1% errors fail the default KPIs"
        );
        let table = report.table();
        assert!(
            table.contains("no answer: 1") && table.contains("200: 99"),
            "{table}"
        );
        assert!(table.contains("FAIL throughput"), "{table}");
        assert!(table.contains("verdict: FAIL"));
        let json = serde_json::to_value(&report).expect("json");
        assert_eq!(json["requests"], 100);
        assert_eq!(json["by_status"]["0"], 1);
        assert_eq!(json["pass"], false);
    }
}
