//! Account rules, free of I/O and of protobuf: a value of these types is valid.

mod names;
mod password;
mod profile;

pub use names::{DisplayName, Email, Login, Username};
pub use password::NewPassword;
pub use profile::{AvatarUrl, Bio};

/// A field that failed validation, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidField {
    pub field: &'static str,
    pub reason: String,
}

impl InvalidField {
    pub(crate) fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}
