//! The payment provider: charges a card token, idempotently by the caller's key, as real
//! providers do. The built-in implementation is a deterministic sandbox that keeps its own
//! records (tables `payments.sandbox_*`, standing in for the provider's side) and knows the
//! usual test cards:
//!
//! | card | behaviour |
//! |---|---|
//! | `4242424242424242` | succeeds |
//! | `4000000000000002` | is declined |
//! | `4000000000000119` | charges, then times out (the answer is lost) once; a retry with the same key gets the charge |
//!
//! Any other valid card number is declined (`card_unknown`), as a test mode declines real
//! cards.

use std::future::Future;
use std::pin::Pin;

use platform::database::{Db, DbError};
use uuid::Uuid;

/// What a charge came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Charge {
    Succeeded { id: Uuid },
    Declined,
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// No answer in time: the charge may or may not have happened; retry with the same key.
    #[error("the provider did not answer in time")]
    Timeout,
    #[error("the provider failed: {0}")]
    Failed(String),
}

type ProviderFuture<'a> = Pin<Box<dyn Future<Output = Result<Charge, ProviderError>> + Send + 'a>>;

/// A payment provider. `key` makes the charge idempotent: the same key always names the
/// same charge.
pub trait PaymentProvider: Send + Sync {
    fn charge<'a>(
        &'a self,
        key: &'a str,
        token: &'a str,
        amount_minor: i64,
        currency: &'a str,
    ) -> ProviderFuture<'a>;
}

/// The built-in sandbox provider.
pub struct Sandbox {
    db: Db,
}

impl Sandbox {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    async fn charge_inner(
        &self,
        key: &str,
        token: &str,
        amount_minor: i64,
        currency: &str,
    ) -> Result<Charge, ProviderError> {
        let failed = |e: DbError| ProviderError::Failed(e.to_string());
        let behavior: String = match self
            .db
            .query_opt(
                "SELECT",
                "payments.sandbox_cards",
                "SELECT behavior FROM payments.sandbox_cards WHERE token = $1",
                &[&token],
            )
            .await
            .map_err(failed)?
        {
            Some(row) => row.get(0),
            None => "decline".to_owned(),
        };
        let status = if behavior == "decline" {
            "declined"
        } else {
            "succeeded"
        };
        // The provider's record of the charge, by key: a second attempt finds the first.
        let row = self
            .db
            .query_one(
                "UPSERT",
                "payments.sandbox_charges",
                "INSERT INTO payments.sandbox_charges
                    (idempotency_key, id, token, amount, currency, status)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (idempotency_key) DO UPDATE
                    SET attempts = payments.sandbox_charges.attempts + 1
                 RETURNING id, status, attempts",
                &[
                    &key,
                    &Uuid::new_v4(),
                    &token,
                    &amount_minor,
                    &currency,
                    &status,
                ],
            )
            .await
            .map_err(failed)?;
        let (id, status, attempts): (Uuid, String, i32) = (row.get(0), row.get(1), row.get(2));
        if behavior == "timeout_once" && attempts == 1 {
            // Charged, but the answer never arrives.
            return Err(ProviderError::Timeout);
        }
        Ok(if status == "succeeded" {
            Charge::Succeeded { id }
        } else {
            Charge::Declined
        })
    }
}

impl PaymentProvider for Sandbox {
    fn charge<'a>(
        &'a self,
        key: &'a str,
        token: &'a str,
        amount_minor: i64,
        currency: &'a str,
    ) -> ProviderFuture<'a> {
        Box::pin(self.charge_inner(key, token, amount_minor, currency))
    }
}
