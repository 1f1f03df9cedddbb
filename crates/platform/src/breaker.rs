//! A circuit breaker per upstream service, in every gRPC client channel.
//!
//! Closed, it lets calls through and remembers the last `window` outcomes. When at least
//! `min_calls` of them are known and the share of failures (no answer, DEADLINE_EXCEEDED,
//! UNAVAILABLE, INTERNAL, UNKNOWN) reaches `failure_ratio`, it opens: calls fail at once
//! with UNAVAILABLE (reason `CIRCUIT_OPEN`, `retry-after` metadata; the gateway answers 503
//! with Retry-After, naming the dependency) instead of waiting out a deadline against a
//! service that is not answering. After `open_ms` it half-opens: one call goes through as
//! a probe; its success closes the breaker, its failure opens it again.
//!
//! The state is the gauge `circuit_breaker_state{upstream}` (0 closed, 1 half-open,
//! 2 open); calls refused are `circuit_breaker_rejections_total{upstream}`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// The `ErrorInfo` reason of a call the breaker refused.
pub const CIRCUIT_OPEN: &str = "CIRCUIT_OPEN";

/// `grpc_client.breaker`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSettings {
    /// Outcomes remembered.
    pub window: usize,
    /// Outcomes needed before the breaker may open.
    pub min_calls: usize,
    /// Share of failures among the remembered outcomes that opens it.
    pub failure_ratio: f64,
    /// How long it stays open before a probe, in milliseconds.
    pub open_ms: u64,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            window: 20,
            min_calls: 10,
            failure_ratio: 0.5,
            open_ms: 2000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Closed,
    Open { since: Instant },
    HalfOpen,
}

#[derive(Debug)]
struct State {
    mode: Mode,
    outcomes: VecDeque<bool>,
}

/// How a call was let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Normal,
    /// The one call of a half-open breaker.
    Probe,
}

/// One upstream's breaker; cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct Breaker {
    upstream: &'static str,
    settings: Arc<BreakerSettings>,
    state: Arc<Mutex<State>>,
}

impl Breaker {
    pub fn new(upstream: &'static str, settings: &BreakerSettings) -> Self {
        metrics::gauge!(telemetry::metrics::CIRCUIT_BREAKER_STATE, "upstream" => upstream).set(0.0);
        metrics::counter!(telemetry::metrics::CIRCUIT_BREAKER_REJECTIONS_TOTAL, "upstream" => upstream)
            .increment(0);
        Self {
            upstream,
            settings: Arc::new(settings.clone()),
            state: Arc::new(Mutex::new(State {
                mode: Mode::Closed,
                outcomes: VecDeque::with_capacity(settings.window.max(1)),
            })),
        }
    }

    pub fn upstream(&self) -> &'static str {
        self.upstream
    }

    fn set_mode(&self, state: &mut State, mode: Mode) {
        state.mode = mode;
        let value = match mode {
            Mode::Closed => 0.0,
            Mode::HalfOpen => 1.0,
            Mode::Open { .. } => 2.0,
        };
        metrics::gauge!(telemetry::metrics::CIRCUIT_BREAKER_STATE, "upstream" => self.upstream)
            .set(value);
        match mode {
            Mode::Open { .. } => tracing::warn!(upstream = self.upstream, "circuit breaker opened"),
            Mode::Closed => tracing::info!(upstream = self.upstream, "circuit breaker closed"),
            Mode::HalfOpen => {}
        }
    }

    /// May a call go now? `Err` holds how long until the breaker will let one through.
    pub fn admit(&self) -> Result<Admission, Duration> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let open_for = Duration::from_millis(self.settings.open_ms);
        let verdict = match state.mode {
            Mode::Closed => Ok(Admission::Normal),
            Mode::Open { since } if since.elapsed() >= open_for => {
                self.set_mode(&mut state, Mode::HalfOpen);
                Ok(Admission::Probe)
            }
            Mode::Open { since } => Err(open_for.saturating_sub(since.elapsed())),
            // A probe is out: the others wait for its outcome.
            Mode::HalfOpen => Err(open_for.min(Duration::from_secs(1))),
        };
        if verdict.is_err() {
            metrics::counter!(
                telemetry::metrics::CIRCUIT_BREAKER_REJECTIONS_TOTAL,
                "upstream" => self.upstream
            )
            .increment(1);
        }
        verdict
    }

    /// The outcome of a call `admit` let through.
    pub fn record(&self, admission: Admission, success: bool) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if admission == Admission::Probe || state.mode == Mode::HalfOpen {
            state.outcomes.clear();
            let mode = if success {
                Mode::Closed
            } else {
                Mode::Open {
                    since: Instant::now(),
                }
            };
            self.set_mode(&mut state, mode);
            return;
        }
        if state.outcomes.len() >= self.settings.window.max(1) {
            state.outcomes.pop_front();
        }
        state.outcomes.push_back(success);
        let known = state.outcomes.len();
        let failures = state.outcomes.iter().filter(|ok| !**ok).count();
        if state.mode == Mode::Closed
            && known >= self.settings.min_calls.max(1)
            && failures as f64 >= self.settings.failure_ratio * known as f64
        {
            state.outcomes.clear();
            self.set_mode(
                &mut state,
                Mode::Open {
                    since: Instant::now(),
                },
            );
        }
    }
}

/// Whether a gRPC status code counts against the upstream.
pub fn is_failure(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Unavailable
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Internal
            | tonic::Code::Unknown
    )
}

/// The status a refused call fails with.
pub fn refusal(upstream: &str, wait: Duration) -> tonic::Status {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut status = crate::grpc::with_reason(
        tonic::Code::Unavailable,
        format!("{upstream} is failing; calls to it are paused (circuit open)"),
        CIRCUIT_OPEN,
    );
    if let Ok(value) = seconds.max(1).to_string().parse() {
        status
            .metadata_mut()
            .insert(crate::grpc::RETRY_AFTER, value);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(open_ms: u64) -> Breaker {
        Breaker::new(
            "test-upstream",
            &BreakerSettings {
                window: 4,
                min_calls: 4,
                failure_ratio: 0.5,
                open_ms,
            },
        )
    }

    #[test]
    fn opens_on_the_failure_ratio_and_not_before_enough_calls() {
        let b = breaker(60_000);
        for ok in [false, false, false] {
            assert_eq!(b.admit(), Ok(Admission::Normal));
            b.record(Admission::Normal, ok);
        }
        assert_eq!(b.admit(), Ok(Admission::Normal), "3 calls are not enough");
        b.record(Admission::Normal, true);
        assert!(b.admit().is_err(), "3 of 4 failed: open");
    }

    #[test]
    fn stays_closed_below_the_ratio() {
        let b = breaker(60_000);
        for ok in [true, false, true, true, true, false, true, true] {
            assert!(b.admit().is_ok());
            b.record(Admission::Normal, ok);
        }
        assert!(b.admit().is_ok());
    }

    #[test]
    fn half_opens_after_the_pause_with_one_probe() {
        let b = breaker(1);
        for _ in 0..4 {
            let a = b.admit().expect("closed");
            b.record(a, false);
        }
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(b.admit(), Ok(Admission::Probe));
        assert!(b.admit().is_err(), "one probe at a time");
        b.record(Admission::Probe, false);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(b.admit(), Ok(Admission::Probe));
        b.record(Admission::Probe, true);
        assert_eq!(b.admit(), Ok(Admission::Normal), "a good probe closes it");
    }

    #[test]
    fn a_refusal_names_the_upstream_and_when_to_retry() {
        let status = refusal("engagement-service", Duration::from_millis(2500));
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(status.message().contains("engagement-service"));
        assert_eq!(crate::grpc::reason(&status).as_deref(), Some(CIRCUIT_OPEN));
        assert_eq!(crate::grpc::retry_after(&status), Some(3));
    }
}
