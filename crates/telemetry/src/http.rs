//! actix-web middleware: trace context in, server span, request/correlation ids, RED
//! metrics, one access log line. Handlers do none of this themselves.

use std::future::{Ready, ready};
use std::rc::Rc;
use std::time::Instant;

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{CONTENT_LENGTH, HeaderName, HeaderValue};
use actix_web::{Error, HttpMessage};
use futures::future::LocalBoxFuture;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::context::{self, CORRELATION_ID_HEADER, REQUEST_ID_HEADER, RequestContext};
use crate::metrics as m;
use crate::propagation;

/// The `endpoint` label of requests that matched no route: one fixed value, never the raw
/// path (which would make one time series per URL anyone cares to request).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// A short, stable error code a handler attaches to its error response
/// (`response.extensions_mut().insert(ErrorKind("not_found"))`); it becomes the
/// `error_type` label of `errors_total`.
#[derive(Debug, Clone, Copy)]
pub struct ErrorKind(pub &'static str);

/// The middleware. Wrap the whole `App` with it, outermost, so it sees every request,
/// including those that match no route.
///
/// A client is not trusted with our traces: unless `telemetry.trust_client_trace`, its
/// `traceparent` is only linked (its sampled flag cannot force sampling, nor its trace id
/// join ours), and only the allowlisted keys of its `baggage` travel on.
#[derive(Debug, Clone, Default)]
pub struct RequestTelemetry {
    policy: std::sync::Arc<ClientTracePolicy>,
}

#[derive(Debug, Clone, Default)]
struct ClientTracePolicy {
    trust_client_trace: bool,
    baggage_allowlist: Vec<String>,
}

impl RequestTelemetry {
    pub fn new(settings: &crate::TelemetrySettings) -> Self {
        Self {
            policy: std::sync::Arc::new(ClientTracePolicy {
                trust_client_trace: settings.trust_client_trace,
                baggage_allowlist: settings.baggage_allowlist.clone(),
            }),
        }
    }
}

/// The baggage entry `synthetic=true` marks load-generator traffic (crates/loadgen); it is
/// always kept, whatever `telemetry.baggage_allowlist` says, so traces of load can be told
/// apart. It only ever labels a request as synthetic, never grants anything.
pub const SYNTHETIC_KEY: &str = "synthetic";

impl ClientTracePolicy {
    /// Makes `span` the server span of a request whose client sent `client` context.
    fn adopt(&self, span: &tracing::Span, client: &opentelemetry::Context) {
        use opentelemetry::baggage::BaggageExt;
        use opentelemetry::trace::TraceContextExt;
        let kept: opentelemetry::baggage::Baggage = client
            .baggage()
            .iter()
            .filter(|(key, (value, _))| {
                self.baggage_allowlist.iter().any(|k| k == key.as_str())
                    || (key.as_str() == SYNTHETIC_KEY && value.as_str() == "true")
            })
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        let parent = if self.trust_client_trace {
            client.with_baggage(kept)
        } else {
            let remote = client.span().span_context().clone();
            if remote.is_valid() {
                span.add_link(remote);
            }
            opentelemetry::Context::new().with_baggage(kept)
        };
        if let Err(e) = span.set_parent(parent) {
            tracing::debug!(error = %e, "could not set the parent of the server span");
        }
    }
}

impl<S, B> Transform<S, ServiceRequest> for RequestTelemetry
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = RequestTelemetryMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequestTelemetryMiddleware {
            service: Rc::new(service),
            policy: std::sync::Arc::clone(&self.policy),
        }))
    }
}

pub struct RequestTelemetryMiddleware<S> {
    service: Rc<S>,
    policy: std::sync::Arc<ClientTracePolicy>,
}

impl<S, B> Service<ServiceRequest> for RequestTelemetryMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let start = Instant::now();
        let method = method_label(req.method());
        let route = req
            .match_pattern()
            .unwrap_or_else(|| UNMATCHED_ROUTE.to_owned());
        let request_id = context::new_id();
        let correlation_id = req
            .headers()
            .get(CORRELATION_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(context::sanitize_id)
            .unwrap_or_else(|| request_id.clone());
        let request_size = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);

        // Semantic conventions: span name "{method} {route}", kind server.
        // String values as `&str` (not `%`): recorded without the formatting machinery.
        let name = format!("{method} {route}");
        let span = tracing::info_span!(
            "http.server.request",
            otel.name = name.as_str(),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            http.request.method = method,
            http.route = route.as_str(),
            url.path = req.path(),
            // The scheme this server speaks (not a client's X-Forwarded-Proto), and the
            // version as the semantic conventions spell it: no allocation for either.
            url.scheme = if req.app_config().secure() { "https" } else { "http" },
            network.protocol.version = protocol_version(req.version()),
            http.response.status_code = tracing::field::Empty,
            error.type = tracing::field::Empty,
            request_id = request_id.as_str(),
            correlation_id = correlation_id.as_str(),
        );
        let client = propagation::extract(&propagation::ActixHeaders(req.headers()));
        self.policy.adopt(&span, &client);

        let ctx = RequestContext::new(request_id.clone(), correlation_id.clone());
        req.extensions_mut().insert(ctx.clone());
        // Decrements when the request ends, however it ends (a client that disconnects
        // makes actix drop this future before it completes).
        let in_flight = InFlight::start();

        let fut = {
            let _entered = span.enter();
            self.service.call(req)
        };
        let labels_route = route.clone();
        Box::pin(
            ctx.scope(
                async move {
                    let result = fut.await;
                    let (status, response_size, error_kind) = match &result {
                        Ok(res) => (
                            res.status().as_u16(),
                            match res.response().body().size() {
                                BodySize::Sized(n) => Some(n),
                                BodySize::None | BodySize::Stream => None,
                            },
                            res.response().extensions().get::<ErrorKind>().copied(),
                        ),
                        Err(e) => (e.as_response_error().status_code().as_u16(), None, None),
                    };
                    let elapsed = start.elapsed().as_secs_f64();
                    record(
                        method,
                        &labels_route,
                        status,
                        elapsed,
                        request_size,
                        response_size,
                        error_kind,
                    );

                    let current = tracing::Span::current();
                    current.record("http.response.status_code", status);
                    if status >= 500 {
                        current.record("otel.status_code", "ERROR");
                        current.record(
                            "error.type",
                            error_kind.map_or_else(|| status.to_string(), |k| k.0.to_owned()),
                        );
                    }
                    let level_is_error = status >= 500;
                    if level_is_error {
                        tracing::error!(
                            http.request.method = %method,
                            http.route = %labels_route,
                            status,
                            duration_ms = elapsed * 1000.0,
                            "request failed"
                        );
                    } else {
                        tracing::info!(
                            http.request.method = %method,
                            http.route = %labels_route,
                            status,
                            duration_ms = elapsed * 1000.0,
                            "request completed"
                        );
                    }
                    drop(in_flight);

                    result.map(|mut res| {
                        let headers = res.headers_mut();
                        for (name, value) in [
                            (REQUEST_ID_HEADER, request_id.as_str()),
                            (CORRELATION_ID_HEADER, correlation_id.as_str()),
                        ] {
                            if let Ok(value) = HeaderValue::from_str(value) {
                                headers.insert(HeaderName::from_static(name), value);
                            }
                        }
                        res
                    })
                }
                .instrument(span),
            ),
        )
    }
}

/// `network.protocol.version` as the semantic conventions spell it.
fn protocol_version(version: actix_web::http::Version) -> &'static str {
    use actix_web::http::Version;
    match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_11 => "1.1",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "other",
    }
}

/// The request method as a label: the standard ones by name, anything else `_OTHER` (the
/// semantic conventions' value), since a client may send any token as a method and each
/// would otherwise become new time series.
fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

/// One request counted in `active_connections` while this value lives.
struct InFlight;

impl InFlight {
    thread_local! {
        /// The gauge's handle, looked up once per thread.
        static GAUGE: metrics::Gauge = metrics::gauge!(m::ACTIVE_CONNECTIONS);
    }

    fn start() -> Self {
        Self::GAUGE.with(|g| g.increment(1.0));
        Self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        Self::GAUGE.with(|g| g.decrement(1.0));
    }
}

/// The `'static` copy of a route template, made once per template: labels from it cost no
/// allocation per request. Templates are a fixed set (the app's routes and
/// [`UNMATCHED_ROUTE`]), so the set stays bounded.
fn interned(route: &str) -> &'static str {
    use std::collections::HashSet;
    use std::sync::{LazyLock, RwLock};
    static ROUTES: LazyLock<RwLock<HashSet<&'static str>>> = LazyLock::new(RwLock::default);
    if let Some(found) = ROUTES.read().ok().and_then(|set| set.get(route).copied()) {
        return found;
    }
    let mut set = match ROUTES.write() {
        Ok(set) => set,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some(found) = set.get(route) {
        return found;
    }
    let leaked: &'static str = Box::leak(route.to_owned().into_boxed_str());
    set.insert(leaked);
    leaked
}

/// HTTP status codes as label values, `"100"` to `"599"`, made once.
fn status_label(status: u16) -> &'static str {
    use std::sync::LazyLock;
    static LABELS: LazyLock<Vec<String>> =
        LazyLock::new(|| (0..600).map(|code: u16| code.to_string()).collect());
    LABELS
        .get(usize::from(status))
        .map_or("other", String::as_str)
}

/// `http_<status>`, the `error_type` of an error response without an [`ErrorKind`].
fn http_error_label(status: u16) -> &'static str {
    use std::sync::LazyLock;
    static LABELS: LazyLock<Vec<String>> =
        LazyLock::new(|| (0..600).map(|code: u16| format!("http_{code}")).collect());
    LABELS
        .get(usize::from(status))
        .map_or("http_other", String::as_str)
}

/// The RED series of one (method, endpoint, status): looked up in the registry once per
/// thread, then only updated (a lookup builds and hashes the labels every time).
#[derive(Clone)]
struct Handles {
    requests: metrics::Counter,
    duration: metrics::Histogram,
    request_size: metrics::Histogram,
    response_size: metrics::Histogram,
}

impl Handles {
    fn new(method: &'static str, endpoint: &'static str, status: u16) -> Self {
        Self {
            requests: metrics::counter!(
                m::HTTP_REQUESTS_TOTAL,
                "method" => method,
                "endpoint" => endpoint,
                "status_code" => status_label(status)
            ),
            duration: metrics::histogram!(m::HTTP_REQUEST_DURATION_SECONDS, "method" => method, "endpoint" => endpoint),
            request_size: metrics::histogram!(m::HTTP_REQUEST_SIZE_BYTES, "method" => method, "endpoint" => endpoint),
            response_size: metrics::histogram!(m::HTTP_RESPONSE_SIZE_BYTES, "method" => method, "endpoint" => endpoint),
        }
    }

    /// This thread's handles of the series. Keys are the labels' addresses (both are
    /// `'static` and interned) and the status: a bounded set, like the series themselves.
    fn of(method: &'static str, endpoint: &'static str, status: u16) -> Self {
        use std::cell::RefCell;
        use std::collections::HashMap;
        thread_local! {
            static CACHE: RefCell<HashMap<(usize, usize, u16), Handles>> = RefCell::default();
        }
        let key = (method.as_ptr() as usize, endpoint.as_ptr() as usize, status);
        CACHE.with(|cache| {
            cache
                .borrow_mut()
                .entry(key)
                .or_insert_with(|| Self::new(method, endpoint, status))
                .clone()
        })
    }
}

fn record(
    method: &'static str,
    route: &str,
    status: u16,
    elapsed: f64,
    request_size: u64,
    response_size: Option<u64>,
    error_kind: Option<ErrorKind>,
) {
    let endpoint = interned(route);
    let handles = Handles::of(method, endpoint, status);
    handles.requests.increment(1);
    handles.duration.record(elapsed);
    handles.request_size.record(request_size as f64);
    if let Some(size) = response_size {
        handles.response_size.record(size as f64);
    }
    if status >= 400 {
        let error_type = error_kind.map_or_else(|| http_error_label(status), |k| k.0);
        metrics::counter!(m::ERRORS_TOTAL, "error_type" => error_type, "endpoint" => endpoint)
            .increment(1);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use actix_web::http::Method;
    use actix_web::test as actix_test;
    use actix_web::{App, HttpResponse, web};
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    /// What a request's handler would send on to the services (trace context and baggage),
    /// under the middleware configured by `settings`.
    async fn forwarded(settings: crate::TelemetrySettings) -> HashMap<String, String> {
        use opentelemetry::trace::TracerProvider as _;
        propagation::install();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let _guard = tracing::subscriber::set_default(subscriber);
        let app =
            actix_test::init_service(App::new().wrap(RequestTelemetry::new(&settings)).route(
                "/",
                web::get().to(|| async {
                    let mut headers = HashMap::new();
                    let cx = tracing::Span::current().context();
                    propagation::inject(&cx, &mut headers);
                    HttpResponse::Ok().json(headers)
                }),
            ))
            .await;
        let request = actix_test::TestRequest::get()
            .uri("/")
            .insert_header((
                "traceparent",
                format!("00-{CLIENT_TRACE}-00f067aa0ba902b7-01"),
            ))
            .insert_header(("baggage", "tenant=acme,session=stolen,synthetic=true"))
            .to_request();
        actix_test::call_and_read_body_json(&app, request).await
    }

    #[tokio::test]
    async fn a_client_context_is_not_continued_and_only_allowlisted_baggage_travels() {
        let sent = forwarded(crate::TelemetrySettings {
            baggage_allowlist: vec!["tenant".into()],
            ..crate::TelemetrySettings::default()
        })
        .await;
        let baggage = sent.get("baggage").map(String::as_str).unwrap_or_default();
        let mut entries: Vec<&str> = baggage.split(',').collect();
        entries.sort_unstable();
        assert_eq!(entries, ["synthetic=true", "tenant=acme"]);
        let traceparent = sent.get("traceparent").expect("our own trace context");
        assert!(!traceparent.contains(CLIENT_TRACE), "{traceparent}");

        let sent = forwarded(crate::TelemetrySettings::default()).await;
        assert_eq!(
            sent.get("baggage").map(String::as_str),
            Some("synthetic=true"),
            "only the load marker by default"
        );
    }

    #[tokio::test]
    async fn a_trusted_client_context_is_continued() {
        let sent = forwarded(crate::TelemetrySettings {
            trust_client_trace: true,
            ..crate::TelemetrySettings::default()
        })
        .await;
        let traceparent = sent.get("traceparent").expect("trace context");
        assert!(traceparent.contains(CLIENT_TRACE), "{traceparent}");
    }

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(
            method_label(&Method::from_bytes(b"FOO1").expect("token")),
            "_OTHER"
        );
        assert_eq!(
            method_label(&Method::from_bytes(b"FOO2").expect("token")),
            "_OTHER"
        );
    }
}
