//! Every error the gateway returns, as `{"error": {"code", "message", "request_id"}}`.
//! gRPC codes map to HTTP statuses here and nowhere else.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use telemetry::RequestContext;
use telemetry::http::ErrorKind;

#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    status: StatusCode,
    /// Stable, machine-readable: clients switch on it; it is also the `error_type` label.
    code: &'static str,
    message: String,
    /// Seconds, for `Retry-After`.
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_argument", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self {
            retry_after: Some(retry_after_secs),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests; retry in {retry_after_secs} s"),
            )
        }
    }

    /// This process is at its limit of requests in flight: come back shortly.
    pub fn overloaded(retry_after_secs: u64) -> Self {
        Self {
            retry_after: Some(retry_after_secs),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                format!("the gateway is at capacity; retry in {retry_after_secs} s"),
            )
        }
    }

    /// An answer from `service` that the client can act on, or a generic one when the
    /// failure is ours (the details are in the service's log under the same request id).
    pub fn from_status(service: &str, status: &tonic::Status) -> Self {
        use tonic::Code;
        let passthrough = status.message().to_owned();
        // Causes with HTTP statuses of their own, whatever gRPC code carries them.
        match platform::grpc::reason(status).as_deref() {
            Some("PAYLOAD_TOO_LARGE") => {
                return Self::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    passthrough,
                );
            }
            // A breaker failing fast: the dependency is named, and when to come back.
            Some(platform::breaker::CIRCUIT_OPEN) => {
                return Self {
                    retry_after: platform::grpc::retry_after(status),
                    ..Self::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "dependency_unavailable",
                        passthrough,
                    )
                };
            }
            Some("VIDEO_NOT_READY") => {
                return Self::new(StatusCode::CONFLICT, "not_ready", passthrough);
            }
            Some("UNSUPPORTED_MEDIA_TYPE") => {
                return Self::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    passthrough,
                );
            }
            _ => {}
        }
        let (http, code, message) = match status.code() {
            Code::InvalidArgument => (StatusCode::BAD_REQUEST, "invalid_argument", passthrough),
            Code::FailedPrecondition => {
                (StatusCode::BAD_REQUEST, "failed_precondition", passthrough)
            }
            Code::OutOfRange => (StatusCode::BAD_REQUEST, "out_of_range", passthrough),
            Code::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated", passthrough),
            Code::PermissionDenied => (StatusCode::FORBIDDEN, "permission_denied", passthrough),
            Code::NotFound => (StatusCode::NOT_FOUND, "not_found", passthrough),
            Code::AlreadyExists => (StatusCode::CONFLICT, "already_exists", passthrough),
            Code::Aborted => (StatusCode::CONFLICT, "aborted", passthrough),
            // The service's own saturation is a 503 to retry; a quota of the caller's a 429.
            Code::ResourceExhausted if platform::grpc::is_overloaded(status) => {
                (StatusCode::SERVICE_UNAVAILABLE, "overloaded", passthrough)
            }
            Code::ResourceExhausted => (
                StatusCode::TOO_MANY_REQUESTS,
                "resource_exhausted",
                passthrough,
            ),
            Code::Cancelled => (
                StatusCode::SERVICE_UNAVAILABLE,
                "cancelled",
                format!("the request to {service} was cancelled"),
            ),
            Code::DeadlineExceeded => (
                StatusCode::GATEWAY_TIMEOUT,
                "deadline_exceeded",
                format!("{service} did not answer in time"),
            ),
            Code::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!("{service} is unavailable; try again shortly"),
            ),
            Code::Unimplemented => (
                StatusCode::NOT_IMPLEMENTED,
                "unimplemented",
                format!("{service} does not support this operation"),
            ),
            // A success code here would be a bug in the caller.
            Code::Ok | Code::Unknown | Code::Internal | Code::DataLoss => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error".to_owned(),
            ),
        };
        if http.is_server_error() {
            tracing::error!(
                peer = service,
                grpc_code = ?status.code(),
                grpc_message = status.message(),
                "service call failed"
            );
        }
        // A saturated service that named no wait: a second is the usual backoff.
        let retry_after = platform::grpc::retry_after(status)
            .or_else(|| platform::grpc::is_overloaded(status).then_some(1));
        Self {
            retry_after,
            ..Self::new(http, code, message)
        }
    }
}

/// The body of every error answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    #[schema(inline)]
    error: ErrorDetail,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct ErrorDetail {
    /// Stable and machine-readable (`invalid_argument`, `not_found`, `rate_limited`...).
    #[schema(value_type = String)]
    code: &'static str,
    /// For people: what is wrong, naming the field or the dependency.
    message: String,
    /// The `X-Request-Id` of the request, to quote when reporting a problem.
    request_id: String,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let request_id = RequestContext::current()
            .map(|c| c.request_id().to_owned())
            .unwrap_or_default();
        let mut response = HttpResponse::build(self.status).json(ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message.clone(),
                request_id,
            },
        });
        response.extensions_mut().insert(ErrorKind(self.code));
        let headers = response.headers_mut();
        if let Some(seconds) = self.retry_after
            && let Ok(value) = actix_web::http::header::HeaderValue::from_str(&seconds.to_string())
        {
            headers.insert(actix_web::http::header::RETRY_AFTER, value);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                actix_web::http::header::WWW_AUTHENTICATE,
                actix_web::http::header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// Bodies, paths and query strings that fail to parse get the same JSON errors.
pub mod extractors {
    use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
    use actix_web::http::StatusCode;
    use actix_web::{HttpRequest, web};

    use super::ApiError;

    pub fn json_config(limit: usize) -> web::JsonConfig {
        web::JsonConfig::default()
            .limit(limit)
            .error_handler(move |err, _req: &HttpRequest| json_error(&err, limit).into())
    }

    fn json_error(err: &JsonPayloadError, limit: usize) -> ApiError {
        match err {
            JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!("the request body is larger than {limit} bytes"),
                )
            }
            JsonPayloadError::ContentType => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the request body must be JSON (Content-Type: application/json)",
            ),
            JsonPayloadError::Deserialize(e) => {
                ApiError::bad_request(format!("invalid JSON body: {e}"))
            }
            // Payload and transport failures, and variants added to actix-web later.
            _ => ApiError::bad_request(format!("unreadable request body: {err}")),
        }
    }

    pub fn path_config() -> web::PathConfig {
        web::PathConfig::default().error_handler(|err: PathError, _req: &HttpRequest| {
            ApiError::bad_request(format!("invalid path: {err}")).into()
        })
    }

    pub fn query_config() -> web::QueryConfig {
        web::QueryConfig::default().error_handler(|err: QueryPayloadError, _req: &HttpRequest| {
            ApiError::bad_request(format!("invalid query string: {err}")).into()
        })
    }
}
