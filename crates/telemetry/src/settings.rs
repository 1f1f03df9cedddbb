use serde::Deserialize;

use crate::InitError;

/// Telemetry settings: the `[telemetry]` section of every process's configuration.
///
/// The standard OpenTelemetry variables win over these when set, as users of any
/// OpenTelemetry SDK expect: `OTEL_EXPORTER_OTLP_ENDPOINT`
/// (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`,
/// `OTEL_TRACES_SAMPLER_ARG`; `RUST_LOG` wins over `log_level`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// Log filter in `RUST_LOG` syntax, e.g. `info` or `info,video_service=debug`.
    pub log_level: String,
    /// Deployment environment written on every log line and span: `local`, `staging`, `production`.
    pub environment: String,
    /// OTLP/gRPC endpoint receiving spans, e.g. `http://jaeger:4317`. Empty: no export.
    pub otlp_endpoint: String,
    /// Sampler, by its OpenTelemetry name (`parentbased_always_on`, `traceidratio`, ...).
    pub sampler: String,
    /// Argument of ratio samplers: the fraction of new traces kept, 0.0..=1.0.
    pub sampler_arg: f64,
    /// At the edge (the gateway), continue the trace a client's `traceparent` names, with
    /// its sampling decision. Off: every request starts a new trace, sampled by our own
    /// sampler, with a link to the client's context (kept for correlation only).
    pub trust_client_trace: bool,
    /// At the edge, the client `baggage` keys passed on to the services; all others are
    /// dropped. Empty (the default): no client baggage travels.
    pub baggage_allowlist: Vec<String>,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            log_level: "info".to_owned(),
            environment: "local".to_owned(),
            otlp_endpoint: String::new(),
            sampler: "parentbased_always_on".to_owned(),
            sampler_arg: 1.0,
            trust_client_trace: false,
            baggage_allowlist: Vec::new(),
        }
    }
}

/// The OpenTelemetry sampler names (`OTEL_TRACES_SAMPLER` values) we support.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SamplerKind {
    AlwaysOn,
    AlwaysOff,
    TraceIdRatio(f64),
    ParentBasedAlwaysOn,
    ParentBasedAlwaysOff,
    ParentBasedTraceIdRatio(f64),
}

impl std::fmt::Display for SamplerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::AlwaysOn => f.write_str("always_on"),
            Self::AlwaysOff => f.write_str("always_off"),
            Self::TraceIdRatio(r) => write!(f, "traceidratio({r})"),
            Self::ParentBasedAlwaysOn => f.write_str("parentbased_always_on"),
            Self::ParentBasedAlwaysOff => f.write_str("parentbased_always_off"),
            Self::ParentBasedTraceIdRatio(r) => write!(f, "parentbased_traceidratio({r})"),
        }
    }
}

impl SamplerKind {
    /// Parses an OpenTelemetry sampler name and its argument.
    pub fn parse(name: &str, arg: f64) -> Result<Self, String> {
        if !(0.0..=1.0).contains(&arg) {
            return Err(format!("sampler argument {arg} is outside 0.0..=1.0"));
        }
        Ok(match name.trim().to_ascii_lowercase().as_str() {
            "always_on" => Self::AlwaysOn,
            "always_off" => Self::AlwaysOff,
            "traceidratio" => Self::TraceIdRatio(arg),
            "parentbased_always_on" => Self::ParentBasedAlwaysOn,
            "parentbased_always_off" => Self::ParentBasedAlwaysOff,
            "parentbased_traceidratio" => Self::ParentBasedTraceIdRatio(arg),
            other => {
                return Err(format!(
                    "unknown sampler `{other}` (expected always_on, always_off, traceidratio, \
                     parentbased_always_on, parentbased_always_off or parentbased_traceidratio)"
                ));
            }
        })
    }
}

/// Settings after the `OTEL_*` and `RUST_LOG` variables were applied.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub service_name: String,
    pub environment: String,
    pub log_level: String,
    pub otlp_endpoint: Option<String>,
    pub sampler: SamplerKind,
}

impl TelemetrySettings {
    pub(crate) fn resolve(&self, service_name: &str) -> Result<Resolved, InitError> {
        self.resolve_with(service_name, |key| std::env::var(key).ok())
    }

    pub(crate) fn resolve_with(
        &self,
        service_name: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Resolved, InitError> {
        let non_empty = |key: &str| env(key).filter(|v| !v.trim().is_empty());
        let endpoint = non_empty("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| non_empty("OTEL_EXPORTER_OTLP_ENDPOINT"))
            .or_else(|| Some(self.otlp_endpoint.clone()).filter(|e| !e.trim().is_empty()));
        if let Some(endpoint) = &endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            // opentelemetry-otlp treats a scheme-less endpoint as https, which is never what
            // a local `jaeger:4317` means: refuse it instead of failing silently later.
            return Err(InitError::Setting {
                key: "telemetry.otlp_endpoint",
                reason: format!("`{endpoint}` needs a scheme, e.g. http://{endpoint}"),
            });
        }
        let sampler_name = non_empty("OTEL_TRACES_SAMPLER").unwrap_or_else(|| self.sampler.clone());
        let sampler_arg = match non_empty("OTEL_TRACES_SAMPLER_ARG") {
            Some(raw) => raw.trim().parse::<f64>().map_err(|e| InitError::Setting {
                key: "OTEL_TRACES_SAMPLER_ARG",
                reason: format!("`{raw}` is not a number: {e}"),
            })?,
            None => self.sampler_arg,
        };
        let sampler = SamplerKind::parse(&sampler_name, sampler_arg).map_err(|reason| {
            InitError::Setting {
                key: "telemetry.sampler",
                reason,
            }
        })?;
        Ok(Resolved {
            service_name: non_empty("OTEL_SERVICE_NAME").unwrap_or_else(|| service_name.to_owned()),
            environment: self.environment.clone(),
            log_level: self.log_level.clone(),
            otlp_endpoint: endpoint,
            sampler,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |key| {
            pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn otel_variables_win_over_settings() {
        let settings = TelemetrySettings {
            otlp_endpoint: "http://configured:4317".into(),
            ..TelemetrySettings::default()
        };
        let resolved = settings
            .resolve_with(
                "video-service",
                env_of(&[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4317"),
                    ("OTEL_SERVICE_NAME", "videos-canary"),
                    ("OTEL_TRACES_SAMPLER", "traceidratio"),
                    ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
                ]),
            )
            .expect("valid");
        assert_eq!(
            resolved.otlp_endpoint.as_deref(),
            Some("http://jaeger:4317")
        );
        assert_eq!(resolved.service_name, "videos-canary");
        assert_eq!(resolved.sampler, SamplerKind::TraceIdRatio(0.25));
    }

    #[test]
    fn no_endpoint_anywhere_means_no_export() {
        let resolved = TelemetrySettings::default()
            .resolve_with("gateway", env_of(&[]))
            .expect("valid");
        assert_eq!(resolved.otlp_endpoint, None);
        assert_eq!(resolved.sampler, SamplerKind::ParentBasedAlwaysOn);
    }

    #[test]
    fn an_endpoint_without_scheme_is_refused_naming_the_key() {
        let settings = TelemetrySettings {
            otlp_endpoint: "jaeger:4317".into(),
            ..TelemetrySettings::default()
        };
        let err = settings
            .resolve_with("gateway", env_of(&[]))
            .expect_err("scheme-less endpoint");
        assert!(err.to_string().contains("telemetry.otlp_endpoint"), "{err}");
    }

    #[test]
    fn unknown_sampler_and_bad_ratio_are_refused() {
        assert!(SamplerKind::parse("sometimes", 1.0).is_err());
        assert!(SamplerKind::parse("traceidratio", 1.5).is_err());
        let err = TelemetrySettings::default()
            .resolve_with("gateway", env_of(&[("OTEL_TRACES_SAMPLER_ARG", "half")]))
            .expect_err("not a number");
        assert!(err.to_string().contains("OTEL_TRACES_SAMPLER_ARG"), "{err}");
    }
}
