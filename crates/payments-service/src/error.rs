//! Everything a payments use case can fail with, and its one mapping to gRPC.

use platform::database::DbError;
use serde::{Deserialize, Serialize};
use tonic::Status;

use crate::domain::InvalidField;

/// `ErrorInfo` reasons the gateway turns into HTTP statuses of their own.
pub const PAYMENT_DECLINED: &str = "PAYMENT_DECLINED";
pub const IDEMPOTENCY_KEY_REUSED: &str = "IDEMPOTENCY_KEY_REUSED";
pub const IDEMPOTENCY_KEY_IN_USE: &str = "IDEMPOTENCY_KEY_IN_USE";
pub const INSUFFICIENT_FUNDS: &str = "INSUFFICIENT_FUNDS";

/// A business refusal: part of an operation's answer, stored with its idempotency key and
/// replayed like a success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    #[error("the card was declined")]
    Declined,
    #[error("you already have a subscription; cancel it first")]
    AlreadySubscribed,
    #[error("the account {0} has too little money for this transfer")]
    InsufficientFunds(String),
}

#[derive(Debug, thiserror::Error)]
pub enum PaymentsError {
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("no {kind} {id}")]
    NotFound { kind: &'static str, id: String },
    /// Another request with this idempotency key is being processed right now.
    #[error("a request with this idempotency key is in progress; retry shortly")]
    KeyInUse,
    /// The idempotency key was used for a different request.
    #[error("this idempotency key was used for a different request")]
    KeyReused,
    /// The payment provider did not answer (after retries); nothing was recorded.
    #[error("the payment provider is unavailable: {0}")]
    Provider(String),
    /// Something stored cannot be read back (a bug, never the client's doing).
    #[error("{0}")]
    Corrupt(String),
    /// A service this one calls failed.
    #[error("{0}")]
    Upstream(Status),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl PaymentsError {
    pub fn not_found(kind: &'static str, id: impl ToString) -> Self {
        Self::NotFound {
            kind,
            id: id.to_string(),
        }
    }
}

impl From<tokio_postgres::Error> for PaymentsError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Db(DbError::from(e))
    }
}

impl From<deadpool_postgres::PoolError> for PaymentsError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Self::Db(DbError::from(e))
    }
}

impl From<PaymentsError> for Status {
    fn from(e: PaymentsError) -> Self {
        let message = e.to_string();
        match e {
            PaymentsError::Invalid(field) => field.into(),
            PaymentsError::Refused(Refusal::Declined) => platform::grpc::with_reason(
                tonic::Code::FailedPrecondition,
                message,
                PAYMENT_DECLINED,
            ),
            PaymentsError::Refused(Refusal::AlreadySubscribed) => Status::already_exists(message),
            PaymentsError::Refused(Refusal::InsufficientFunds(_)) => platform::grpc::with_reason(
                tonic::Code::FailedPrecondition,
                message,
                INSUFFICIENT_FUNDS,
            ),
            PaymentsError::NotFound { .. } => Status::not_found(message),
            PaymentsError::KeyInUse => {
                platform::grpc::with_reason(tonic::Code::Aborted, message, IDEMPOTENCY_KEY_IN_USE)
            }
            PaymentsError::KeyReused => platform::grpc::with_reason(
                tonic::Code::FailedPrecondition,
                message,
                IDEMPOTENCY_KEY_REUSED,
            ),
            PaymentsError::Provider(e) => {
                tracing::warn!(error = %e, "payment provider unavailable");
                Status::unavailable("the payment provider is unavailable; retry with the same key")
            }
            PaymentsError::Corrupt(e) => {
                tracing::error!(error = %e, "stored payments data unreadable");
                Status::internal("internal error")
            }
            PaymentsError::Upstream(status) => {
                if status.code() == tonic::Code::DeadlineExceeded {
                    Status::deadline_exceeded(status.message().to_owned())
                } else {
                    Status::unavailable(status.message().to_owned())
                }
            }
            PaymentsError::Db(e) => e.into(),
        }
    }
}
