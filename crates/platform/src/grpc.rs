//! gRPC plumbing shared by the services: listeners, the server with our telemetry layer,
//! graceful shutdown, and traced client channels.

use std::future::Future;
use std::time::Duration;

use std::sync::LazyLock;

use telemetry::grpc::{GrpcClientLayer, GrpcClientService, GrpcServerLayer, KnownRpcs};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower::Layer as _;
use tower::layer::util::{Identity, Stack};

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::{ConfigError, GrpcClientSettings, ServerSettings};
use crate::faults::{FaultLayer, Faults};
use crate::identity::{IdentityKey, IdentityLayer, SigningLayer, SigningService};
use crate::lifecycle::Lifecycle;

static KNOWN_RPCS: LazyLock<Vec<(&'static str, &'static str)>> = LazyLock::new(|| {
    let mut known = proto::METHODS.to_vec();
    known.extend([
        ("grpc.health.v1.Health", "Check"),
        ("grpc.health.v1.Health", "Watch"),
    ]);
    known
});

/// Every RPC of ours and the standard health service: the only `grpc_service` and
/// `grpc_method` label values besides `_unknown`.
pub fn known_rpcs() -> KnownRpcs {
    KNOWN_RPCS.as_slice()
}

/// A gRPC service's two listeners. Tests bind port 0; `main` binds the configured ports.
pub struct Listeners {
    pub grpc: tokio::net::TcpListener,
    pub admin: std::net::TcpListener,
}

impl Listeners {
    pub async fn bind(server: &ServerSettings) -> std::io::Result<Self> {
        let grpc = bind(&server.host, server.port, "server.port")?;
        grpc.set_nonblocking(true)?;
        let admin = bind(&server.host, server.admin_port, "server.admin_port")?;
        Ok(Self {
            grpc: tokio::net::TcpListener::from_std(grpc)?,
            admin,
        })
    }
}

/// Binds `host:port`, waiting up to 10 s while the port is in use. A fixed port inside the
/// kernel's ephemeral range (50051-50054 are, on Linux) can be held for a moment by some
/// outgoing connection's local end; that passes, a second server on the port does not.
/// The error names the address and the setting.
pub fn bind(host: &str, port: u16, key: &str) -> std::io::Result<std::net::TcpListener> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match listen(host, port) {
            Ok(listener) => return Ok(listener),
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && std::time::Instant::now() < deadline =>
            {
                tracing::warn!(host, port, "port in use; retrying");
                std::thread::sleep(Duration::from_millis(250));
            }
            Err(e) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("cannot listen on {host}:{port} (`{key}`): {e}"),
                ));
            }
        }
    }
}

/// A listening socket on `host:port` with `SO_REUSEADDR`, as servers usually have it: a
/// restarted process (a crash, `kill -9`) gets its port back at once, while the dead
/// one's connections still linger in TIME_WAIT.
fn listen(host: &str, port: u16) -> std::io::Result<std::net::TcpListener> {
    use std::net::ToSocketAddrs as _;
    let addr = (host, port).to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{host} has no address"),
        )
    })?;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// The server stack every service uses.
pub type ServerStack = Stack<
    FaultLayer,
    Stack<IdentityLayer, Stack<ServerDeadlineLayer, Stack<GrpcServerLayer, Identity>>>,
>;

/// `Server::builder()` with the bounds and layers every service uses. Order matters:
/// telemetry is outermost so refused calls and injected faults are measured and traced
/// like real failures; identity comes before anything that serves the call.
pub fn server(
    faults: Faults,
    settings: &ServerSettings,
    identity: IdentityKey,
) -> Server<ServerStack> {
    Server::builder()
        // More calls on one connection than this are shed at once (RESOURCE_EXHAUSTED, which
        // the gateway answers as 503 with Retry-After) instead of queueing without bound.
        .concurrency_limit_per_connection(settings.grpc_concurrency_per_connection)
        .load_shed(true)
        .layer(GrpcServerLayer::new(known_rpcs()))
        // Per RPC, not tonic's one server-wide timeout: an upload may take an hour.
        .layer(ServerDeadlineLayer {
            settings: Arc::new(settings.clone()),
        })
        .layer(IdentityLayer::new(identity))
        .layer(FaultLayer::new(faults))
}

/// Answers DEADLINE_EXCEEDED to an RPC that runs past its limit (`server.grpc_request_timeout_ms`,
/// or its entry in `server.grpc_request_timeouts`), or past the caller's `grpc-timeout` if
/// that is sooner.
#[derive(Debug, Clone)]
pub struct ServerDeadlineLayer {
    settings: Arc<ServerSettings>,
}

impl<S> tower::Layer<S> for ServerDeadlineLayer {
    type Service = ServerDeadline<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ServerDeadline {
            inner,
            settings: Arc::clone(&self.settings),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServerDeadline<S> {
    inner: S,
    settings: Arc<ServerSettings>,
}

/// A `grpc-timeout` value (`<digits><unit>`), as a duration.
fn parse_grpc_timeout(value: &http::HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?;
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

impl<S, B, R> tower::Service<http::Request<B>> for ServerDeadline<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let mut inner = telemetry::grpc::take_ready(&mut self.inner);
        let limit = self.settings.grpc_request_timeout_of(req.uri().path());
        let deadline = req
            .headers()
            .get(GRPC_TIMEOUT)
            .and_then(parse_grpc_timeout)
            .map_or(limit, |asked| asked.min(limit));
        let fut = SERVING_DEADLINE.scope(tokio::time::Instant::now() + deadline, inner.call(req));
        Box::pin(async move {
            match tokio::time::timeout(deadline, fut).await {
                Ok(answer) => answer,
                Err(_) => Ok(tonic::Status::deadline_exceeded(format!(
                    "no answer within {} ms",
                    deadline.as_millis()
                ))
                .into_http()),
            }
        })
    }
}

/// Serves until `shutdown` resolves, then: readiness and gRPC health turn NOT_SERVING, the
/// listener stops accepting, in-flight RPCs get up to `grace` to finish.
///
/// `start` receives the incoming connections and the drain signal and returns the tonic
/// server future (`server().add_service(..).serve_with_incoming_shutdown(incoming, signal)`).
pub async fn serve<F, Fut>(
    listener: tokio::net::TcpListener,
    lifecycle: Lifecycle,
    health: HealthReporter,
    grace: Duration,
    shutdown: impl Future<Output = ()>,
    start: F,
) -> anyhow::Result<()>
where
    F: FnOnce(TcpIncoming, futures::future::BoxFuture<'static, ()>) -> Fut,
    Fut: Future<Output = Result<(), tonic::transport::Error>> + Send + 'static,
{
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let drain = Box::pin(async move {
        let _ = stop_rx.await;
    });
    let mut server = tokio::spawn(start(TcpIncoming::from(listener), drain));
    tokio::select! {
        () = shutdown => {}
        finished = &mut server => {
            // The server stopped on its own: that is an error worth exiting on.
            finished??;
            return Ok(());
        }
    }
    tracing::info!(
        grace_secs = grace.as_secs(),
        "shutting down: draining in-flight requests"
    );
    lifecycle.begin_shutdown();
    health
        .set_service_status("", ServingStatus::NotServing)
        .await;
    let _ = stop_tx.send(());
    match tokio::time::timeout(grace, &mut server).await {
        Ok(finished) => finished??,
        Err(_) => {
            tracing::warn!("grace period over with requests still in flight; stopping anyway");
            server.abort();
        }
    }
    Ok(())
}

/// A channel to another service that opens a client span and carries trace context,
/// request ids, a signed internal identity token and the call's deadline in every call's
/// metadata.
pub type TracedChannel =
    GrpcClientService<SigningService<BreakerService<DeadlineService<Channel>>>>;

/// A lazily connecting, traced channel to `url` (the setting `key`, for error messages)
/// whose calls carry identity tokens signed with `identity` and the deadlines of
/// `deadlines`.
pub fn channel(
    url: &str,
    key: &str,
    identity: &IdentityKey,
    deadlines: &GrpcClientSettings,
) -> Result<TracedChannel, ConfigError> {
    let timed = DeadlineService {
        inner: raw_channel(url, key)?,
        deadlines: Deadlines::new(deadlines),
    };
    let guarded = BreakerService {
        inner: timed,
        breaker: crate::breaker::Breaker::new(upstream_of(key), &deadlines.breaker),
    };
    let signed = SigningLayer::new(identity.clone()).layer(guarded);
    Ok(GrpcClientLayer::new(known_rpcs()).layer(signed))
}

/// The service a channel's setting names (`services.engagement`, `engagement.url`...), for
/// the breaker's metric label.
fn upstream_of(key: &str) -> &'static str {
    let name = key.trim_start_matches("services.").trim_end_matches(".url");
    match name {
        "user" | "users" => "user-service",
        "video" | "videos" => "video-service",
        "engagement" => "engagement-service",
        "payments" => "payments-service",
        _ => "other",
    }
}

/// Fails calls fast while the upstream's breaker is open; tells the breaker how each call
/// it let through went.
#[derive(Debug, Clone)]
pub struct BreakerService<S> {
    inner: S,
    breaker: crate::breaker::Breaker,
}

impl<S, B, R> tower::Service<http::Request<B>> for BreakerService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>, Error = BoxError>,
    S::Future: Send + 'static,
    R: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = futures::future::BoxFuture<'static, Result<S::Response, BoxError>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let admission = match self.breaker.admit() {
            Ok(admission) => admission,
            Err(wait) => {
                let refusal = crate::breaker::refusal(self.breaker.upstream(), wait);
                return Box::pin(std::future::ready(Err(Box::new(refusal) as BoxError)));
            }
        };
        let mut pending = PendingOutcome {
            breaker: self.breaker.clone(),
            admission,
            recorded: false,
        };
        let fut = self.inner.call(req);
        Box::pin(async move {
            let outcome = fut.await;
            let success = match &outcome {
                // An error answer comes as headers only: its grpc-status is here already.
                Ok(response) => response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .is_none_or(|code| !crate::breaker::is_failure(tonic::Code::from(code))),
                Err(_) => false,
            };
            pending.record(success);
            outcome
        })
    }
}

/// A call the breaker let through, until its outcome is recorded. A call dropped before
/// it finished (its caller gave up) says nothing about the upstream, except that a probe
/// must not leave the breaker half-open for ever: a dropped probe counts as failed, and
/// the next one goes after the pause.
struct PendingOutcome {
    breaker: crate::breaker::Breaker,
    admission: crate::breaker::Admission,
    recorded: bool,
}

impl PendingOutcome {
    fn record(&mut self, success: bool) {
        self.recorded = true;
        self.breaker.record(self.admission, success);
    }
}

impl Drop for PendingOutcome {
    fn drop(&mut self) {
        if !self.recorded && self.admission == crate::breaker::Admission::Probe {
            self.breaker.record(self.admission, false);
        }
    }
}

/// Each RPC's deadline as a `grpc-timeout` value, by request path.
#[derive(Debug, Clone)]
struct Deadlines {
    default: Duration,
    per_rpc: Arc<HashMap<String, Duration>>,
}

fn grpc_timeout(budget: Duration) -> http::HeaderValue {
    // At most 8 digits (gRPC's limit): anything longer is written in seconds.
    let ms = budget.as_millis().max(1);
    let value = if ms < 100_000_000 {
        format!("{ms}m")
    } else {
        format!("{}S", (ms / 1000).min(99_999_999))
    };
    http::HeaderValue::from_str(&value).unwrap_or_else(|_| http::HeaderValue::from_static("10S"))
}

impl Deadlines {
    fn new(settings: &GrpcClientSettings) -> Self {
        Self {
            default: Duration::from_millis(settings.timeout_ms),
            per_rpc: Arc::new(
                settings
                    .timeouts
                    .iter()
                    .map(|t| (format!("/{}", t.rpc), Duration::from_millis(t.ms)))
                    .collect(),
            ),
        }
    }
}

tokio::task_local! {
    /// When the RPC this task serves must have answered by: the caller's `grpc-timeout` or
    /// the server's own limit. Calls made while serving it get no more than what is left.
    static SERVING_DEADLINE: tokio::time::Instant;
}

/// What is left of the deadline of the RPC this task is serving, if it serves one.
pub fn remaining_budget() -> Option<Duration> {
    SERVING_DEADLINE
        .try_with(|deadline| deadline.saturating_duration_since(tokio::time::Instant::now()))
        .ok()
}

/// An error a call fails with: a boxed [`tonic::Status`] when it is ours to name.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Whether a transport error is the channel giving up on a deadline.
fn is_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if e.is::<tonic::TimeoutExpired>() || e.is::<tokio::time::error::Elapsed>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// Gives every call a deadline: the configured one of its RPC, cut to what is left of the
/// deadline of the RPC being served (so a call never waits longer than its caller will),
/// sent as `grpc-timeout` and enforced here. A call that runs out of time fails with
/// DEADLINE_EXCEEDED (the gateway answers 504), not CANCELLED.
#[derive(Debug, Clone)]
pub struct DeadlineService<S> {
    inner: S,
    deadlines: Deadlines,
}

impl<S, B> tower::Service<http::Request<B>> for DeadlineService<S>
where
    S: tower::Service<http::Request<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = futures::future::BoxFuture<'static, Result<S::Response, BoxError>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let configured = *self
            .deadlines
            .per_rpc
            .get(req.uri().path())
            .unwrap_or(&self.deadlines.default);
        let asked = req
            .headers()
            .get(GRPC_TIMEOUT)
            .and_then(parse_grpc_timeout)
            .unwrap_or(configured);
        // A tenth of what is left (at most 50 ms) stays with the caller, to answer in time
        // when this call runs out.
        let budget = match remaining_budget() {
            Some(left) => {
                asked.min(left.saturating_sub((left / 10).min(Duration::from_millis(50))))
            }
            None => asked,
        };
        if budget.is_zero() {
            return Box::pin(std::future::ready(Err(
                Box::new(tonic::Status::deadline_exceeded(
                    "no time left of the caller's deadline",
                )) as BoxError,
            )));
        }
        req.headers_mut().insert(
            http::HeaderName::from_static(GRPC_TIMEOUT),
            grpc_timeout(budget),
        );
        let fut = self.inner.call(req);
        Box::pin(async move {
            let expired = || {
                Box::new(tonic::Status::deadline_exceeded(format!(
                    "no answer within {} ms",
                    budget.as_millis()
                ))) as BoxError
            };
            match tokio::time::timeout(budget, fut).await {
                Ok(Ok(response)) => Ok(response),
                Ok(Err(e)) => {
                    let e: BoxError = e.into();
                    if is_timeout(e.as_ref()) {
                        Err(expired())
                    } else {
                        Err(e)
                    }
                }
                Err(_) => Err(expired()),
            }
        })
    }
}

const GRPC_TIMEOUT: &str = "grpc-timeout";

/// An untraced channel (health probes, which would otherwise fill traces with noise).
pub fn raw_channel(url: &str, key: &str) -> Result<Channel, ConfigError> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|e| ConfigError::invalid(key, format!("`{url}` is not a URL: {e}")))?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true);
    Ok(endpoint.connect_lazy())
}

/// Metadata of a `RESOURCE_EXHAUSTED` status: whole seconds to wait before retrying.
pub const RETRY_AFTER: &str = "retry-after";
/// Metadata marking a `RESOURCE_EXHAUSTED` status as the service's own overload (the
/// gateway answers 503), as opposed to a quota of the caller's (429).
const OVERLOADED: &str = "x-socialflow-overloaded";

/// `RESOURCE_EXHAUSTED` for a caller's quota (a locked account): retry after `seconds`.
pub fn exhausted(message: impl Into<String>, seconds: u64) -> tonic::Status {
    let mut status = tonic::Status::resource_exhausted(message);
    if let Ok(value) = seconds.to_string().parse() {
        status.metadata_mut().insert(RETRY_AFTER, value);
    }
    status
}

/// `RESOURCE_EXHAUSTED` because the service itself is saturated: retry after `seconds`.
pub fn overloaded(message: impl Into<String>, seconds: u64) -> tonic::Status {
    let mut status = exhausted(message, seconds);
    status
        .metadata_mut()
        .insert(OVERLOADED, tonic::metadata::MetadataValue::from_static("1"));
    status
}

/// The retry delay a status carries, in seconds.
pub fn retry_after(status: &tonic::Status) -> Option<u64> {
    status
        .metadata()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// What tonic answers a call shed by `load_shed` (more RPCs in flight on the connection
/// than `server.grpc_concurrency_per_connection`).
const SHED_MESSAGE: &str = "Too many active requests for the connection";

/// Whether a status says the service was saturated (see [`overloaded`]), or shed the call.
pub fn is_overloaded(status: &tonic::Status) -> bool {
    status.metadata().contains_key(OVERLOADED)
        || (status.code() == tonic::Code::ResourceExhausted && status.message() == SHED_MESSAGE)
}

/// `INVALID_ARGUMENT` whose details name the bad field (a `google.rpc.BadRequest` field
/// violation), so a caller can tell which field was wrong without reading the message.
pub fn invalid_field(field: &str, message: impl Into<String>) -> tonic::Status {
    use tonic_types::{ErrorDetails, StatusExt};
    let message = message.into();
    tonic::Status::with_error_details(
        tonic::Code::InvalidArgument,
        message.clone(),
        ErrorDetails::with_bad_request_violation(field, message),
    )
}

/// The fields an `INVALID_ARGUMENT` status names in its details.
pub fn invalid_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|bad| bad.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// A list request's paging that is not valid.
impl From<crate::pagination::InvalidPage> for tonic::Status {
    fn from(e: crate::pagination::InvalidPage) -> Self {
        invalid_field(e.field, e.message)
    }
}

/// A status with a `google.rpc.ErrorInfo` `reason`: a stable, machine-readable cause the
/// caller can switch on (the gateway turns some into HTTP statuses of their own).
pub fn with_reason(code: tonic::Code, message: impl Into<String>, reason: &str) -> tonic::Status {
    use tonic_types::{ErrorDetails, StatusExt};
    tonic::Status::with_error_details(
        code,
        message,
        ErrorDetails::with_error_info(reason, "socialflow", std::collections::HashMap::new()),
    )
}

/// The `ErrorInfo` reason a status carries, if any.
pub fn reason(status: &tonic::Status) -> Option<String> {
    use tonic_types::StatusExt;
    status.get_details_error_info().map(|info| info.reason)
}
