//! Everything an engagement use case can fail with, and its one mapping to gRPC.

use platform::database::DbError;
use platform::pagination::InvalidPage;
use tonic::Status;

use crate::domain::InvalidField;

#[derive(Debug, thiserror::Error)]
pub enum EngagementError {
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    #[error(transparent)]
    Page(#[from] InvalidPage),
    /// No such thing, or one the caller may not see (the same answer for both).
    #[error("no {kind} with id {id}")]
    NotFound { kind: &'static str, id: uuid::Uuid },
    #[error("{0}")]
    Forbidden(String),
    /// The video exists but cannot be watched, liked or commented on yet.
    #[error("video {0} is not ready yet")]
    NotReady(uuid::Uuid),
    /// Another service this use case needs did not answer.
    #[error("{service} is unavailable: {message}")]
    Upstream {
        service: &'static str,
        code: tonic::Code,
        message: String,
    },
    /// Redis (view buffer, trending) failed.
    #[error("the counters are unavailable: {0}")]
    Counters(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl EngagementError {
    pub fn not_found(kind: &'static str, id: uuid::Uuid) -> Self {
        Self::NotFound { kind, id }
    }

    pub fn upstream(service: &'static str, status: &Status) -> Self {
        Self::Upstream {
            service,
            code: status.code(),
            message: status.message().to_owned(),
        }
    }
}

impl From<EngagementError> for Status {
    fn from(e: EngagementError) -> Self {
        let message = e.to_string();
        match e {
            EngagementError::Invalid(field) => field.into(),
            EngagementError::Page(page) => page.into(),
            EngagementError::NotFound { .. } => Status::not_found(message),
            EngagementError::Forbidden(_) => Status::permission_denied(message),
            EngagementError::NotReady(_) => platform::grpc::with_reason(
                tonic::Code::FailedPrecondition,
                message,
                "VIDEO_NOT_READY",
            ),
            EngagementError::Upstream { code, .. } => {
                tracing::warn!(error = %message, "upstream call failed");
                // A deadline passed downstream is still a deadline; everything else is
                // this service being unable to answer right now.
                if code == tonic::Code::DeadlineExceeded {
                    Status::deadline_exceeded(message)
                } else {
                    Status::unavailable(message)
                }
            }
            EngagementError::Counters(e) => {
                tracing::error!(error = %e, "counter store failure");
                Status::unavailable("the counters are unavailable; try again shortly")
            }
            EngagementError::Db(e) => e.into(),
        }
    }
}
