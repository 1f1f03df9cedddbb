//! Retries of idempotent reads, and only of those: a read that failed with UNAVAILABLE
//! (the peer could not be reached, or refused the call) is tried again after a jittered
//! backoff, at most twice, within a retry budget: every call earns a tenth of a retry, so
//! extra attempts stay under 10% of calls however bad things get (no retry storm on a
//! struggling service). An open breaker or a saturated service is never retried: both say
//! "not now". Inside an RPC being served, a retry is made only while its deadline leaves
//! time for it.
//!
//! `grpc_client_retries_total{upstream, outcome}` counts `retried` and `budget_exhausted`.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

/// Retries this process may still spend, earned by calls.
#[derive(Debug)]
pub struct RetryBudget {
    /// Retries earned per call.
    ratio: f64,
    /// At most this many saved up (a quiet hour does not buy a storm).
    max: f64,
    tokens: Mutex<f64>,
}

impl RetryBudget {
    /// `ratio` retries per call (0.1: extra attempts ≤ 10% of calls).
    pub fn new(ratio: f64) -> Self {
        Self {
            ratio: ratio.clamp(0.0, 1.0),
            max: 10.0,
            tokens: Mutex::new(0.0),
        }
    }

    fn deposit(&self) {
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        *tokens = (*tokens + self.ratio).min(self.max);
    }

    fn withdraw(&self) -> bool {
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self::new(0.1)
    }
}

/// Whether a failed read may be tried again.
pub fn retryable(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::Unavailable
        && crate::grpc::reason(status).as_deref() != Some(crate::breaker::CIRCUIT_OPEN)
        && !crate::grpc::is_overloaded(status)
}

/// Runs the idempotent read `call` (a new request each time), retrying as the module says.
pub async fn idempotent<T, F, Fut>(
    budget: &RetryBudget,
    upstream: &'static str,
    mut call: F,
) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, tonic::Status>>,
{
    const MAX_RETRIES: u32 = 2;
    budget.deposit();
    let mut retries = 0;
    loop {
        let status = match call().await {
            Err(status) if retryable(&status) && retries < MAX_RETRIES => status,
            outcome => return outcome,
        };
        let base = 25u64 << retries;
        let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % base;
        let backoff = Duration::from_millis(base + jitter);
        if crate::grpc::remaining_budget().is_some_and(|left| left <= backoff * 2) {
            return Err(status);
        }
        if !budget.withdraw() {
            metrics::counter!(
                telemetry::metrics::GRPC_CLIENT_RETRIES_TOTAL,
                "upstream" => upstream,
                "outcome" => "budget_exhausted"
            )
            .increment(1);
            return Err(status);
        }
        metrics::counter!(
            telemetry::metrics::GRPC_CLIENT_RETRIES_TOTAL,
            "upstream" => upstream,
            "outcome" => "retried"
        )
        .increment(1);
        tokio::time::sleep(backoff).await;
        retries += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn a_flaky_read_is_retried_within_the_budget_only() {
        let budget = RetryBudget::new(0.1);
        let attempts = AtomicU32::new(0);
        // 100 calls that always fail with UNAVAILABLE: at most 10 extra attempts.
        for _ in 0..100 {
            let result: Result<(), _> = idempotent(&budget, "test", || async {
                attempts.fetch_add(1, Ordering::Relaxed);
                Err(tonic::Status::unavailable("down"))
            })
            .await;
            assert!(result.is_err());
        }
        let extra = attempts.load(Ordering::Relaxed) - 100;
        assert!((1..=10).contains(&extra), "{extra} extra attempts");
    }

    #[tokio::test]
    async fn a_retry_can_turn_a_failure_into_an_answer() {
        let budget = RetryBudget::new(1.0);
        let attempts = AtomicU32::new(0);
        let result = idempotent(&budget, "test", || async {
            match attempts.fetch_add(1, Ordering::Relaxed) {
                0 => Err(tonic::Status::unavailable("blip")),
                _ => Ok(42),
            }
        })
        .await;
        assert_eq!(result.ok(), Some(42));
        assert_eq!(attempts.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn only_unavailable_is_retried_and_never_an_open_breaker() {
        let budget = RetryBudget::new(1.0);
        for status in [
            tonic::Status::internal("bug"),
            tonic::Status::deadline_exceeded("late"),
            tonic::Status::not_found("no"),
            crate::breaker::refusal("x", Duration::from_secs(1)),
            crate::grpc::overloaded("busy", 1),
        ] {
            let attempts = AtomicU32::new(0);
            let code = status.code();
            let result: Result<(), _> = idempotent(&budget, "test", || {
                attempts.fetch_add(1, Ordering::Relaxed);
                let status = tonic::Status::with_details_and_metadata(
                    status.code(),
                    status.message().to_owned(),
                    status.details().to_vec().into(),
                    status.metadata().clone(),
                );
                async move { Err(status) }
            })
            .await;
            assert_eq!(result.map_err(|s| s.code()), Err(code));
            assert_eq!(
                attempts.load(Ordering::Relaxed),
                1,
                "{code:?} is not retried"
            );
        }
    }
}
