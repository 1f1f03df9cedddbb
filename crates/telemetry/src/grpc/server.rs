//! Server side: extracts the W3C trace context and request metadata, opens the RPC server
//! span and records the RED metrics when the call completes.

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
use super::{KnownRpcs, Side, header_str, rpc_labels, take_ready};
use crate::context::{self, CORRELATION_ID_HEADER, REQUEST_ID_HEADER, RequestContext};
use crate::propagation;

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
