//! The response body that reports an RPC's completion: metrics and span status once its
//! trailers (or a trailers-only error) arrive, it ends, or it is dropped early.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::{Side, header_code, is_error};
use crate::metrics as m;

/// Records one completed call: metrics and span status. Runs exactly once per call.
pub(crate) struct Completion {
    side: Side,
    service: &'static str,
    method: &'static str,
    start: Instant,
    span: tracing::Span,
    header_code: Option<tonic::Code>,
}

impl Completion {
    pub(crate) fn pending(
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
    pub(crate) fn attach<B>(
        mut self,
        response: http::Response<B>,
    ) -> http::Response<ObservedBody<B>> {
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

    pub(crate) fn finish(self, code: tonic::Code) {
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
