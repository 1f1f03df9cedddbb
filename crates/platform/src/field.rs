//! A field of a request that failed validation: what every service's domain types answer
//! when they refuse a value, and what becomes `INVALID_ARGUMENT` with a
//! `google.rpc.BadRequest` violation naming the field.

/// A field that failed validation, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidField {
    pub field: &'static str,
    pub reason: String,
}

impl InvalidField {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

impl From<InvalidField> for tonic::Status {
    fn from(e: InvalidField) -> Self {
        crate::grpc::invalid_field(e.field, e.to_string())
    }
}
