//! The one place Social Flow configures observability.
//!
//! Every process calls [`init`] once at start and keeps the returned [`TelemetryGuard`]
//! until it exits. From then on:
//! - `tracing` events become one JSON line each on stdout ([`logs`]),
//! - `tracing` spans become OpenTelemetry spans exported over OTLP/gRPC ([`traces`]),
//! - the `metrics` facade records into a Prometheus registry rendered by [`metrics::render`].
//!
//! The transport adapters in [`http`] (actix-web) and [`grpc`] (tonic/tower) carry the W3C
//! trace context, request id and correlation id across every hop and record the RED metrics,
//! so handlers never time or count themselves.

pub mod context;
pub mod events;

#[doc(hidden)]
pub use tracing as __tracing;
pub mod grpc;
pub mod http;
pub mod logs;
pub mod metrics;
mod propagation;
mod settings;
pub mod stdout;
pub mod traces;

pub use context::RequestContext;
pub use settings::{SamplerKind, TelemetrySettings};

use std::sync::OnceLock;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// What a process is, as written on every log line, span and `socialflow_build_info`.
#[derive(Debug, Clone)]
pub struct ServiceInfo {
    pub name: String,
    pub version: String,
    pub environment: String,
}

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("invalid telemetry setting `{key}`: {reason}")]
    Setting { key: &'static str, reason: String },
    #[error("cannot build the OTLP span exporter for {endpoint}: {source}")]
    Exporter {
        endpoint: String,
        source: opentelemetry_otlp::ExporterBuildError,
    },
    #[error("telemetry was already initialised in this process")]
    AlreadyInitialised,
}

/// Keeps the tracer provider alive; flushes and shuts it down when dropped or on
/// [`TelemetryGuard::shutdown`], so the last spans of a process are not lost.
#[must_use = "dropping the guard shuts telemetry down"]
pub struct TelemetryGuard {
    traces: traces::Tracing,
}

impl TelemetryGuard {
    /// Exports every finished span now. Blocks: call it from a multi-thread runtime or a
    /// plain thread, never from a current-thread runtime (actix workers are one).
    pub fn force_flush(&self) {
        self.traces.force_flush();
    }

    /// Flushes and stops span export. Idempotent.
    pub fn shutdown(&self) {
        self.traces.shutdown();
    }

    /// Whether spans are exported (an OTLP endpoint was configured).
    pub fn exporting(&self) -> bool {
        self.traces.exporting()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        self.traces.shutdown();
        stdout::flush();
    }
}

static INITIALISED: OnceLock<ServiceInfo> = OnceLock::new();

/// Starts logs (JSON on stdout), traces (OTLP when an endpoint is set) and metrics
/// (Prometheus registry) for the process `service_name`, whose spans come from the crates
/// `span_targets` (their `tracing` targets, e.g. `user_service`).
///
/// Must be called inside a Tokio runtime (the OTLP exporter and metric upkeep run on it).
pub fn init(
    service_name: &str,
    settings: &TelemetrySettings,
    span_targets: &[&str],
) -> Result<TelemetryGuard, InitError> {
    init_with_writer(
        service_name,
        settings,
        span_targets,
        stdout::NonBlockingStdout::start(),
    )
}

/// [`init`] with log lines written to `writer` instead of stdout (tests capture them).
pub fn init_with_writer<W>(
    service_name: &str,
    settings: &TelemetrySettings,
    span_targets: &[&str],
    writer: W,
) -> Result<TelemetryGuard, InitError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let resolved = settings.resolve(service_name)?;
    let info = ServiceInfo {
        name: resolved.service_name.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        environment: resolved.environment.clone(),
    };
    if INITIALISED.set(info.clone()).is_err() {
        return Err(InitError::AlreadyInitialised);
    }

    propagation::install();
    let traces = traces::Tracing::start(&info, &resolved)?;

    // Each layer has its own filter so RUST_LOG can quieten logs without silently
    // dropping spans from traces (and the other way round).
    let log_filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&resolved.log_level))
        .map_err(|e| InitError::Setting {
            key: "telemetry.log_level",
            reason: e.to_string(),
        })?;
    let log_layer = tracing_subscriber::fmt::layer()
        .fmt_fields(logs::NoSpanFields)
        .event_format(logs::JsonFormat::new(&info))
        .with_writer(writer)
        .with_filter(log_filter);
    // Without the layer's extras, each an attribute on every span: source location and
    // thread (allocated per span, and nobody reads them: the span name and service say where),
    // and busy/idle time (a clock read at every enter and exit of a request's span).
    let trace_layer = tracing_opentelemetry::layer()
        .with_tracer(traces.tracer())
        .with_level(true)
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_filter(traces::span_filter(span_targets));

    tracing_subscriber::registry()
        .with(trace_layer)
        .with(log_layer)
        .try_init()
        .map_err(|_| InitError::AlreadyInitialised)?;

    metrics::install(&info);

    tracing::info!(
        service = %info.name,
        version = %info.version,
        otlp_endpoint = resolved.otlp_endpoint.as_deref().unwrap_or("(none: export off)"),
        sampler = %resolved.sampler,
        "telemetry started"
    );
    Ok(TelemetryGuard { traces })
}

/// The identity given to [`init`], once it ran.
pub fn service_info() -> Option<&'static ServiceInfo> {
    INITIALISED.get()
}

/// The W3C `traceparent` of the current span, to resume its trace later (a queued job).
pub fn current_traceparent() -> Option<String> {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let mut carrier = std::collections::HashMap::new();
    propagation::inject(&tracing::Span::current().context(), &mut carrier);
    carrier.remove("traceparent")
}

/// Makes `span` a child of the span a `traceparent` names (one saved with
/// [`current_traceparent`]), so work done later joins the trace that asked for it.
pub fn continue_trace(span: &tracing::Span, traceparent: &str) {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let carrier =
        std::collections::HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    if let Err(e) = span.set_parent(propagation::extract(&carrier)) {
        tracing::debug!(error = %e, "could not continue the trace");
    }
}
