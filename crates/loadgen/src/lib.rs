//! Social Flow's load generator: scenarios against the gateway in an open loop (a fixed
//! arrival rate, latency measured from each request's *intended* start so coordinated
//! omission cannot hide a stall) or a closed loop (a fixed number of clients), HDR
//! histograms, a table and JSON report, and a verdict against KPIs.
//!
//! Every request carries a `traceparent` (a new trace, sampled) and the baggage entry
//! `synthetic=true`, so load is traceable and the SLO rules can leave it out.

pub mod kpi;
pub mod report;
pub mod schedule;
pub mod stats;
pub mod zipf;

/// The baggage entry marking synthetic traffic (the gateway keeps it: docs/performance.md).
pub const SYNTHETIC_BAGGAGE: &str = "synthetic=true";

/// A `traceparent` starting a new sampled trace, from 24 random bytes.
pub fn traceparent(random: [u8; 24]) -> String {
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let mut span = [0u8; 8];
    span.copy_from_slice(&random[16..]);
    if span == [0; 8] {
        span[7] = 1;
    }
    let mut trace = [0u8; 16];
    trace.copy_from_slice(&random[..16]);
    if trace == [0; 16] {
        trace[15] = 1;
    }
    format!("00-{}-{}-01", hex(&trace), hex(&span))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_is_w3c_shaped_and_never_all_zero() {
        let tp = traceparent([0xab; 24]);
        assert_eq!(tp.len(), 55);
        assert!(tp.starts_with("00-abab") && tp.ends_with("-01"));
        let zero = traceparent([0; 24]);
        assert!(!zero.contains(&"0".repeat(32)), "{zero}");
    }
}
