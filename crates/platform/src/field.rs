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

/// A UUID field (a path or message id), or why not. The raw value is echoed only when
/// short, so a 5 MB "id" does not come back in the error.
pub fn parse_uuid(field: &'static str, raw: &str) -> Result<uuid::Uuid, InvalidField> {
    uuid::Uuid::parse_str(raw).map_err(|_| {
        if raw.len() <= 64 {
            InvalidField::new(field, format!("must be a UUID, got `{raw}`"))
        } else {
            InvalidField::new(field, format!("must be a UUID, got {} bytes", raw.len()))
        }
    })
}

/// A batch of UUIDs of at most `max`, duplicates removed (order kept).
pub fn parse_uuids(
    field: &'static str,
    raw: &[String],
    max: usize,
) -> Result<Vec<uuid::Uuid>, InvalidField> {
    if raw.len() > max {
        return Err(InvalidField::new(
            field,
            format!("at most {max} ids at once, got {}", raw.len()),
        ));
    }
    let mut ids = Vec::with_capacity(raw.len());
    for id in raw {
        let id = parse_uuid(field, id)?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}
