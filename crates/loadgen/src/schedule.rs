//! When each request of an open loop is due: a fixed arrival rate, optionally reached by
//! a linear ramp. A request's latency is measured from the instant it was *due*, not from
//! when a busy client got round to sending it (coordinated omission): a stall of the
//! system under test shows as the latency of every request that should have gone out
//! during it.

use std::time::Duration;

/// An open loop's arrivals: `rate` requests per second after a `ramp` from zero.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpenLoop {
    pub rate: f64,
    pub ramp: Duration,
}

impl OpenLoop {
    /// Requests due in the first `t` of the run: the integral of the rate (linear up to
    /// `rate` over the ramp, flat after).
    pub fn due_by(&self, t: Duration) -> f64 {
        let t = t.as_secs_f64();
        let ramp = self.ramp.as_secs_f64();
        if ramp > 0.0 && t < ramp {
            self.rate * t * t / (2.0 * ramp)
        } else {
            self.rate * (t - ramp / 2.0)
        }
    }

    /// When the `n`-th request (from 0) is due, measured from the start: the inverse of
    /// [`OpenLoop::due_by`] at `n + 1`.
    pub fn due_at(&self, n: u64) -> Duration {
        let k = (n + 1) as f64;
        let ramp = self.ramp.as_secs_f64();
        if self.rate <= 0.0 {
            return Duration::MAX;
        }
        let in_ramp = self.rate * ramp / 2.0;
        let secs = if ramp > 0.0 && k <= in_ramp {
            (2.0 * ramp * k / self.rate).sqrt()
        } else {
            k / self.rate + ramp / 2.0
        };
        Duration::from_secs_f64(secs.max(0.0))
    }
}

/// The latency to record for a request due at `due` that was answered at `done` (both
/// from the start): from the due time, whenever it was actually sent.
pub fn latency(due: Duration, done: Duration) -> Duration {
    done.saturating_sub(due)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flat_rate_spaces_requests_evenly() {
        let open = OpenLoop {
            rate: 100.0,
            ramp: Duration::ZERO,
        };
        assert_eq!(open.due_at(0), Duration::from_millis(10));
        assert_eq!(open.due_at(99), Duration::from_secs(1));
        let gaps: Vec<u128> = (0..5)
            .map(|n| (open.due_at(n + 1) - open.due_at(n)).as_micros())
            .collect();
        assert!(
            gaps.iter().all(|g| (9_999..=10_001).contains(g)),
            "{gaps:?}"
        );
    }

    #[test]
    fn a_ramp_starts_slow_and_reaches_the_rate() {
        let open = OpenLoop {
            rate: 100.0,
            ramp: Duration::from_secs(10),
        };
        // Half the rate on average during the ramp: 500 requests in its 10 s.
        assert!((open.due_by(Duration::from_secs(10)) - 500.0).abs() < 1e-9);
        assert!((open.due_at(499).as_secs_f64() - 10.0).abs() < 1e-9);
        let early = open.due_at(1) - open.due_at(0);
        let late = open.due_at(1000) - open.due_at(999);
        assert!(early > late * 5, "early {early:?}, late {late:?}");
        assert!((late.as_secs_f64() - 0.01).abs() < 1e-6);
    }

    #[test]
    fn due_at_inverts_due_by() {
        let open = OpenLoop {
            rate: 37.0,
            ramp: Duration::from_secs(3),
        };
        for n in [0u64, 10, 55, 56, 200, 5000] {
            let t = open.due_at(n);
            assert!((open.due_by(t) - (n + 1) as f64).abs() < 1e-6, "n={n}");
        }
    }

    #[test]
    fn latency_counts_from_when_the_request_was_due() {
        // Due at 1 s, the client stalled and sent it at 3 s, answered at 3.01 s: 2.01 s.
        assert_eq!(
            latency(Duration::from_secs(1), Duration::from_millis(3010)),
            Duration::from_millis(2010)
        );
        assert_eq!(
            latency(Duration::from_secs(2), Duration::from_secs(1)),
            Duration::ZERO
        );
    }
}
