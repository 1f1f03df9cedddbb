//! Everything a user-service use case can fail with, and its one mapping to gRPC.

use platform::database::DbError;
use platform::pagination::InvalidPage;
use tonic::Status;

use crate::crypto::HashError;
use crate::domain::InvalidField;
use crate::store::CreateError;

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    #[error(transparent)]
    Page(#[from] InvalidPage),
    /// `email` or `username` already belongs to someone.
    #[error("{0} is already taken")]
    Taken(&'static str),
    #[error("{0}")]
    NotFound(String),
    /// A wrong login or password; which one is never said.
    #[error("invalid login or password")]
    BadCredentials,
    #[error("the refresh token is invalid or expired")]
    InvalidRefreshToken,
    /// The one answer for a locked account, whichever spelling of it was tried and
    /// whenever: nothing in it (no remaining time) can tie an email to a username.
    #[error("this account is temporarily locked after too many failed logins")]
    Locked { retry_after_secs: u64 },
    /// Every password hashing slot stayed busy.
    #[error("too many sign-ins are being checked right now; try again shortly")]
    Busy,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("{0}")]
    Internal(String),
}

impl From<CreateError> for UserError {
    fn from(e: CreateError) -> Self {
        match e {
            CreateError::Taken(field) => Self::Taken(field),
            CreateError::Db(e) => Self::Db(e),
        }
    }
}

impl From<HashError> for UserError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Busy => Self::Busy,
            HashError::Failed(e) => Self::Internal(e),
        }
    }
}

impl From<UserError> for Status {
    fn from(e: UserError) -> Self {
        let message = e.to_string();
        match e {
            UserError::Invalid(field) => field.into(),
            UserError::Page(page) => page.into(),
            UserError::Taken(_) => Status::already_exists(message),
            UserError::NotFound(_) => Status::not_found(message),
            UserError::BadCredentials | UserError::InvalidRefreshToken => {
                Status::unauthenticated(message)
            }
            UserError::Locked { retry_after_secs } => {
                platform::grpc::exhausted(message, retry_after_secs)
            }
            UserError::Busy => platform::grpc::overloaded(message, 1),
            UserError::Db(e) => e.into(),
            UserError::Internal(e) => {
                tracing::error!(error = %e, "internal failure");
                Status::internal("internal error")
            }
        }
    }
}
