//! tower layers for tonic: the server side extracts the W3C trace context and request
//! metadata and opens the RPC server span; the client side opens the client span and
//! injects context and metadata. Both record the gRPC RED metrics when the call completes
//! (for unary RPCs that is when the response body's trailers carry `grpc-status`).
mod body;
mod client;
mod server;

pub use body::ObservedBody;
pub use client::{GrpcClientLayer, GrpcClientService};
pub use server::{GrpcServerLayer, GrpcServerService};

pub(crate) const GRPC_STATUS: &str = "grpc-status";

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Side {
    Server,
    Client,
}

/// The service that `poll_ready` drove to readiness, leaving a clone in its place: the one
/// to call (tower's usual dance for `Clone` services called from a boxed future).
pub fn take_ready<S: Clone>(service: &mut S) -> S {
    let clone = service.clone();
    std::mem::replace(service, clone)
}

/// The label of a service or method that is not one of ours: a caller can send any path,
/// and each would otherwise become new time series.
pub const UNKNOWN: &str = "_unknown";

/// The RPCs a process knows, as (fully qualified service, method); anything else is
/// labelled [`UNKNOWN`].
pub type KnownRpcs = &'static [(&'static str, &'static str)];

/// `/socialflow.video.v1.VideoService/GetVideo` → (`socialflow.video.v1.VideoService`,
/// `GetVideo`) when known; an unknown method of a known service keeps the service name.
pub(crate) fn rpc_labels(known: KnownRpcs, path: &str) -> (&'static str, &'static str) {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let Some((service, method)) = trimmed.split_once('/') else {
        return (UNKNOWN, UNKNOWN);
    };
    let mut known_service = UNKNOWN;
    for &(s, m) in known {
        if s == service {
            if m == method {
                return (s, m);
            }
            known_service = s;
        }
    }
    (known_service, UNKNOWN)
}

pub(crate) fn header_code(headers: &http::HeaderMap) -> Option<tonic::Code> {
    headers
        .get(GRPC_STATUS)
        .map(|v| tonic::Code::from_bytes(v.as_bytes()))
}

pub(crate) fn header_str<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether a code makes the span an error: every non-OK code for clients; for servers
/// only the codes that mean the server failed (OpenTelemetry RPC conventions).
pub(crate) fn is_error(side: Side, code: tonic::Code) -> bool {
    match side {
        Side::Client => code != tonic::Code::Ok,
        Side::Server => matches!(
            code,
            tonic::Code::Unknown
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Unimplemented
                | tonic::Code::Internal
                | tonic::Code::Unavailable
                | tonic::Code::DataLoss
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_labels_are_known_names_or_unknown() {
        const KNOWN: KnownRpcs = &[
            ("socialflow.video.v1.VideoService", "GetVideo"),
            ("socialflow.video.v1.VideoService", "ListVideos"),
        ];
        assert_eq!(
            rpc_labels(KNOWN, "/socialflow.video.v1.VideoService/GetVideo"),
            ("socialflow.video.v1.VideoService", "GetVideo")
        );
        assert_eq!(
            rpc_labels(KNOWN, "/socialflow.video.v1.VideoService/Anything123"),
            ("socialflow.video.v1.VideoService", UNKNOWN)
        );
        for path in ["/evil.Service/x", "/nonsense", "", "//", "/a/b/c"] {
            assert_eq!(rpc_labels(KNOWN, path), (UNKNOWN, UNKNOWN), "{path}");
        }
    }

    #[test]
    fn only_server_failures_are_server_span_errors() {
        assert!(is_error(Side::Server, tonic::Code::Internal));
        assert!(!is_error(Side::Server, tonic::Code::NotFound));
        assert!(is_error(Side::Client, tonic::Code::NotFound));
        assert!(!is_error(Side::Client, tonic::Code::Ok));
    }
}
