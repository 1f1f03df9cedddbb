//! Client side: opens the RPC client span, injects trace context and request ids, and
//! records the RED metrics when the call completes.

use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body::Body;
use tower_layer::Layer;
use tower_service::Service;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::body::{Completion, ObservedBody};
use super::{KnownRpcs, Side, rpc_labels, take_ready};
use crate::context::{CORRELATION_ID_HEADER, REQUEST_ID_HEADER, RequestContext};
use crate::propagation;

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
    S::Error: std::fmt::Display + 'static,
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
                    // No answer: a status the lower layers named (a deadline that passed),
                    // or a transport failure (the peer never answered).
                    span.record("error.message", tracing::field::display(&e));
                    let code = (&e as &dyn std::any::Any)
                        .downcast_ref::<Box<dyn std::error::Error + Send + Sync>>()
                        .and_then(|e| e.downcast_ref::<tonic::Status>())
                        .map_or(tonic::Code::Unavailable, tonic::Status::code);
                    Completion::pending(Side::Client, service, method, start, span).finish(code);
                    return Err(e);
                }
            };
            Ok(Completion::pending(Side::Client, service, method, start, span).attach(response))
        })
    }
}
