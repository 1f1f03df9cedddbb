//! OpenTelemetry traces: a tracer provider exporting OTLP/gRPC (Jaeger ingests it on 4317).
//!
//! We use `opentelemetry-otlp`, not `opentelemetry-jaeger`: the latter is frozen at
//! opentelemetry 0.22 and flagged unmaintained (RUSTSEC-2025-0123), and Jaeger itself
//! recommends OTLP.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, Tracer};
use tracing_subscriber::filter::Targets;

use crate::settings::{Resolved, SamplerKind};
use crate::{InitError, ServiceInfo};

pub(crate) struct Tracing {
    provider: SdkTracerProvider,
    exporting: bool,
    shut_down: AtomicBool,
}

impl Tracing {
    pub(crate) fn start(info: &ServiceInfo, resolved: &Resolved) -> Result<Self, InitError> {
        let resource = Resource::builder()
            .with_service_name(info.name.clone())
            .with_attributes([
                KeyValue::new("service.version", info.version.clone()),
                KeyValue::new("deployment.environment.name", info.environment.clone()),
            ])
            .build();
        let mut builder = SdkTracerProvider::builder()
            .with_resource(resource)
            .with_sampler(sampler(resolved.sampler));
        // Without an endpoint spans still get ids (logs carry trace_id/span_id and context
        // still propagates to the next hop) but nothing is exported.
        if let Some(endpoint) = &resolved.otlp_endpoint {
            let exporter = SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .build()
                .map_err(|source| InitError::Exporter {
                    endpoint: endpoint.clone(),
                    source,
                })?;
            builder = builder.with_batch_exporter(exporter);
        }
        Ok(Self {
            provider: builder.build(),
            exporting: resolved.otlp_endpoint.is_some(),
            shut_down: AtomicBool::new(false),
        })
    }

    pub(crate) fn tracer(&self) -> Tracer {
        self.provider.tracer("socialflow")
    }

    pub(crate) fn exporting(&self) -> bool {
        self.exporting
    }

    pub(crate) fn force_flush(&self) {
        if let Err(e) = self.provider.force_flush() {
            tracing::warn!(error = %e, "flushing spans failed");
        }
    }

    pub(crate) fn shutdown(&self) {
        if self.shut_down.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Err(e) = self.provider.shutdown() {
            eprintln!("telemetry: span export shutdown failed: {e}");
        }
    }
}

fn sampler(kind: SamplerKind) -> Sampler {
    match kind {
        SamplerKind::AlwaysOn => Sampler::AlwaysOn,
        SamplerKind::AlwaysOff => Sampler::AlwaysOff,
        SamplerKind::TraceIdRatio(r) => Sampler::TraceIdRatioBased(r),
        SamplerKind::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        SamplerKind::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        SamplerKind::ParentBasedTraceIdRatio(r) => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(r)))
        }
    }
}

/// Which `tracing` spans become OpenTelemetry spans: those of `targets` (the process's own
/// crates, as the caller names them) and this crate at info and above, and nothing from the
/// libraries underneath (h2, hyper, tonic internals would flood every trace). Independent
/// of `RUST_LOG` on purpose.
pub(crate) fn span_filter(
    targets: &[&str],
) -> impl tracing_subscriber::layer::Filter<tracing_subscriber::Registry> + use<> {
    use tracing_subscriber::filter::{FilterExt, filter_fn};
    let targets = targets.iter().fold(
        Targets::new()
            .with_default(tracing::Level::WARN)
            .with_target("telemetry", tracing::Level::INFO),
        |filter, target| filter.with_target(*target, tracing::Level::INFO),
    );
    // Log events become span events only at `warn` and `error`: every request's access
    // log line as an event of its span would double what tracing costs, for what the log
    // line (which carries the trace id) already says.
    targets.and(filter_fn(|meta| {
        meta.is_span() || *meta.level() <= tracing::Level::WARN
    }))
}
