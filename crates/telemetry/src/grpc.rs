//! tower layers for tonic: the server side extracts the W3C trace context and request
//! metadata and opens the RPC server span; the client side opens the client span and
//! injects context and metadata. Both record the gRPC RED metrics when the call completes
//! (for unary RPCs that is when the response body's trailers carry `grpc-status`).

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body::{Body, Frame, SizeHint};
use tower_layer::Layer;
use tower_service::Service;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::context::{self, CORRELATION_ID_HEADER, REQUEST_ID_HEADER, RequestContext};
use crate::metrics as m;
use crate::propagation;

const GRPC_STATUS: &str = "grpc-status";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Side {
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
fn rpc_labels(known: KnownRpcs, path: &str) -> (&'static str, &'static str) {
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

fn header_code(headers: &http::HeaderMap) -> Option<tonic::Code> {
    headers
        .get(GRPC_STATUS)
        .map(|v| tonic::Code::from_bytes(v.as_bytes()))
}

fn header_str<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether a code makes the span an error: every non-OK code for clients; for servers
/// only the codes that mean the server failed (OpenTelemetry RPC conventions).
fn is_error(side: Side, code: tonic::Code) -> bool {
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

/// Records one completed call: metrics and span status. Runs exactly once per call.
struct Completion {
    side: Side,
    service: &'static str,
    method: &'static str,
    start: Instant,
    span: tracing::Span,
    header_code: Option<tonic::Code>,
}

impl Completion {
    fn pending(
        side: Side,
        service: &'static str,
        method: &'static str,
        start: Instant,
        span: tracing::Span,
    ) -> Self {
        Self {
            side,
            service,
            method,
            start,
            span,
            header_code: None,
        }
    }

    /// Wraps the response body so the call completes when the body does. A status already
    /// in the headers (a trailers-only error response) is remembered.
    fn attach<B>(mut self, response: http::Response<B>) -> http::Response<ObservedBody<B>> {
        let (parts, body) = response.into_parts();
        self.header_code = header_code(&parts.headers);
        http::Response::from_parts(
            parts,
            ObservedBody {
                inner: body,
                completion: Some(self),
            },
        )
    }

    fn finish(self, code: tonic::Code) {
        let elapsed = self.start.elapsed().as_secs_f64();
        let code_label = m::grpc_code_label(code);
        let (handled, handling) = match self.side {
            Side::Server => (
                m::GRPC_SERVER_HANDLED_TOTAL,
                m::GRPC_SERVER_HANDLING_SECONDS,
            ),
            Side::Client => (
                m::GRPC_CLIENT_HANDLED_TOTAL,
                m::GRPC_CLIENT_HANDLING_SECONDS,
            ),
        };
        metrics::counter!(
            handled,
            "grpc_service" => self.service,
            "grpc_method" => self.method,
            "grpc_code" => code_label
        )
        .increment(1);
        metrics::histogram!(
            handling,
            "grpc_service" => self.service,
            "grpc_method" => self.method,
            "grpc_code" => code_label
        )
        .record(elapsed);
        self.span.record("rpc.grpc.status_code", code as i64);
        if is_error(self.side, code) {
            self.span.record("otel.status_code", "ERROR");
            self.span.record("error.type", code_label);
        }
        // Dropping the span here ends it: its duration covers the whole call.
    }
}

pin_project_lite::pin_project! {
    /// A response body that reports the call's completion when its trailers arrive, it
    /// ends, or it is dropped early.
    pub struct ObservedBody<B> {
        #[pin]
        inner: B,
        completion: Option<Completion>,
    }

    impl<B> PinnedDrop for ObservedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(done) = this.project().completion.take() {
                // A trailers-only response (errors) is complete once its headers are read;
                // otherwise the peer went away before the call finished.
                let code = done.header_code.unwrap_or(tonic::Code::Cancelled);
                done.finish(code);
            }
        }
    }
}

impl<B> Body for ObservedBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        match &frame {
            Some(Ok(f)) => {
                if let Some(trailers) = f.trailers_ref()
                    && let Some(done) = this.completion.take()
                {
                    let code = header_code(trailers)
                        .or(done.header_code)
                        .unwrap_or(tonic::Code::Unknown);
                    done.finish(code);
                }
            }
            Some(Err(_)) => {
                if let Some(done) = this.completion.take() {
                    done.finish(tonic::Code::Unknown);
                }
            }
            None => {
                if let Some(done) = this.completion.take() {
                    let code = done.header_code.unwrap_or(tonic::Code::Unknown);
                    done.finish(code);
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Server side: `Server::builder().layer(GrpcServerLayer::new(known))`.
#[derive(Debug, Clone, Copy)]
pub struct GrpcServerLayer {
    known: KnownRpcs,
}

impl GrpcServerLayer {
    /// Labels calls by the RPCs in `known`; any other path is [`UNKNOWN`].
    pub fn new(known: KnownRpcs) -> Self {
        Self { known }
    }
}

impl<S> Layer<S> for GrpcServerLayer {
    type Service = GrpcServerService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GrpcServerService {
            inner,
            known: self.known,
        }
    }
}

#[derive(Debug, Clone)]
pub struct GrpcServerService<S> {
    inner: S,
    known: KnownRpcs,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for GrpcServerService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Body<Data = Bytes>,
{
    type Response = http::Response<ObservedBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        let mut inner = take_ready(&mut self.inner);

        let (service, method) = rpc_labels(self.known, req.uri().path());
        let headers = req.headers();
        let request_id = header_str(headers, REQUEST_ID_HEADER)
            .and_then(context::sanitize_id)
            .unwrap_or_else(context::new_id);
        let correlation_id = header_str(headers, CORRELATION_ID_HEADER)
            .and_then(context::sanitize_id)
            .unwrap_or_else(|| request_id.clone());
        // Who the caller is comes from a verified proof, recorded by the identity layer
        // inside this one (`user_id` on the span and in the context), never from a header.
        let ctx = RequestContext::new(request_id.clone(), correlation_id.clone());

        let span = tracing::info_span!(
            "rpc.server",
            otel.name = %format!("{service}/{method}"),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            rpc.grpc.status_code = tracing::field::Empty,
            error.type = tracing::field::Empty,
            request_id = %request_id,
            correlation_id = %correlation_id,
            user_id = tracing::field::Empty,
        );
        let parent = propagation::extract(&propagation::HttpHeaders(headers));
        if let Err(e) = span.set_parent(parent) {
            tracing::debug!(error = %e, "could not set the remote parent of the RPC span");
        }
        let start = Instant::now();
        let fut = ctx.scope(inner.call(req)).instrument(span.clone());
        Box::pin(async move {
            let response = fut.await?;
            Ok(Completion::pending(Side::Server, service, method, start, span).attach(response))
        })
    }
}

/// Client side: wrap a `tonic::transport::Channel` with
/// `tower::ServiceBuilder::new().layer(GrpcClientLayer::new(known)).service(channel)`.
#[derive(Debug, Clone, Copy)]
pub struct GrpcClientLayer {
    known: KnownRpcs,
}

impl GrpcClientLayer {
    /// Labels calls by the RPCs in `known`; any other path is [`UNKNOWN`].
    pub fn new(known: KnownRpcs) -> Self {
        Self { known }
    }
}

impl<S> Layer<S> for GrpcClientLayer {
    type Service = GrpcClientService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GrpcClientService {
            inner,
            known: self.known,
        }
    }
}

#[derive(Debug, Clone)]
pub struct GrpcClientService<S> {
    inner: S,
    known: KnownRpcs,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for GrpcClientService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
    ReqBody: Send + 'static,
    ResBody: Body<Data = Bytes>,
{
    type Response = http::Response<ObservedBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<ReqBody>) -> Self::Future {
        let mut inner = take_ready(&mut self.inner);

        let (service, method) = rpc_labels(self.known, req.uri().path());
        let span = tracing::info_span!(
            "rpc.client",
            otel.name = %format!("{service}/{method}"),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            rpc.grpc.status_code = tracing::field::Empty,
            error.type = tracing::field::Empty,
            server.address = req.uri().host().unwrap_or_default(),
            error.message = tracing::field::Empty,
        );
        // The client span (not whatever is current) is the parent of the server's span.
        let cx = span.context();
        let headers = req.headers_mut();
        propagation::inject(&cx, &mut propagation::HttpHeadersMut(headers));
        if let Some(ctx) = RequestContext::current() {
            let pairs = [
                (REQUEST_ID_HEADER, ctx.request_id()),
                (CORRELATION_ID_HEADER, ctx.correlation_id()),
            ];
            for (name, value) in pairs {
                if let Ok(value) = http::HeaderValue::from_str(value) {
                    headers.insert(http::HeaderName::from_static(name), value);
                }
            }
        }

        let start = Instant::now();
        let fut = inner.call(req).instrument(span.clone());
        Box::pin(async move {
            let response = match fut.await {
                Ok(response) => response,
                Err(e) => {
                    // Transport failure: the peer never answered.
                    span.record("error.message", tracing::field::display(&e));
                    Completion::pending(Side::Client, service, method, start, span)
                        .finish(tonic::Code::Unavailable);
                    return Err(e);
                }
            };
            Ok(Completion::pending(Side::Client, service, method, start, span).attach(response))
        })
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
