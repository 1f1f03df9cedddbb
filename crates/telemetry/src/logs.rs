//! JSON log lines: one event, one line, with the fields ARCHITECTURE.md promises.
//!
//! `timestamp`, `level`, `service`, `version`, `environment`, `message`, `target`,
//! `trace_id`, `span_id` (when inside a traced span), `request_id`, `correlation_id`,
//! `user_id` (inside a request), then the event's own fields. Fields whose name says they
//! hold a secret are replaced by `[REDACTED]` here, at the source.

use std::fmt;

use opentelemetry::trace::TraceContextExt;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::{RequestContext, ServiceInfo};

pub const REDACTED: &str = "[REDACTED]";

/// Whether a field or header with this name carries a credential and must never be
/// written out: `Authorization`, `Cookie`, `Set-Cookie`, passwords, tokens, secrets, keys.
pub fn is_sensitive(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    const EXACT: &[&str] = &[
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
    ];
    const PARTS: &[&str] = &[
        "password",
        "passwd",
        "token",
        "secret",
        "api_key",
        "apikey",
        "credential",
    ];
    EXACT.contains(&name.as_str()) || PARTS.iter().any(|p| name.contains(p))
}

/// The JSON event formatter.
pub struct JsonFormat {
    service: String,
    version: String,
    environment: String,
}

impl JsonFormat {
    pub fn new(info: &ServiceInfo) -> Self {
        Self {
            service: info.name.clone(),
            version: info.version.clone(),
            environment: info.environment.clone(),
        }
    }
}

impl<S, N> FormatEvent<S, N> for JsonFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut fields = Map::new();
        event.record(&mut JsonVisitor(&mut fields));

        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        let client_fault = is_client_fault(meta.target(), *meta.level(), &fields);
        let level = if client_fault {
            "warn".to_owned()
        } else {
            meta.level().as_str().to_ascii_lowercase()
        };
        line.insert("level".into(), level.into());
        if client_fault {
            line.insert("client_error".into(), true.into());
        }
        line.insert("service".into(), self.service.clone().into());
        line.insert("version".into(), self.version.clone().into());
        line.insert("environment".into(), self.environment.clone().into());
        line.insert(
            "message".into(),
            fields.remove("message").unwrap_or_else(|| Value::from("")),
        );
        line.insert("target".into(), meta.target().into());

        // The OpenTelemetry layer activates a span's context when the span is entered, so
        // the current context is the one of the span this event happens in.
        let otel_cx = opentelemetry::Context::current();
        let span_cx = otel_cx.span().span_context().clone();
        if span_cx.is_valid() {
            line.insert("trace_id".into(), span_cx.trace_id().to_string().into());
            line.insert("span_id".into(), span_cx.span_id().to_string().into());
        }
        if let Some(ctx) = RequestContext::current() {
            line.insert("request_id".into(), ctx.request_id().into());
            line.insert("correlation_id".into(), ctx.correlation_id().into());
            if let Some(user_id) = ctx.user_id() {
                line.insert("user_id".into(), user_id.into());
            }
        }
        for (key, value) in fields {
            line.entry(key).or_insert(value);
        }

        let json = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{json}")
    }
}

/// actix-http logs a connection's stream errors (a malformed request line or header, a
/// body cut short, a client that hung up) at `error`: they are the client's faults, not the
/// system's, and an error-rate alert on logs would page on every port scanner. Written at
/// `warn` with `client_error: true` instead.
fn is_client_fault(target: &str, level: tracing::Level, fields: &Map<String, Value>) -> bool {
    level == tracing::Level::ERROR
        && target.starts_with("actix_http::h1")
        && fields
            .get("message")
            .and_then(Value::as_str)
            .is_some_and(|m| m.starts_with("stream error"))
}

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl JsonVisitor<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        let name = field.name();
        // `log` crate records arrive through tracing-log with `log.` prefixed fields.
        let value = if is_sensitive(name) {
            Value::from(REDACTED)
        } else {
            value
        };
        self.0.insert(name.to_owned(), value);
    }
}

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let mut chain = value.to_string();
        let mut source = value.source();
        while let Some(cause) = source {
            chain.push_str(": ");
            chain.push_str(&cause.to_string());
            source = cause.source();
        }
        self.put(field, Value::from(chain));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::from(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Formats whatever `emit` logs, with a local subscriber, and returns the parsed lines.
    fn capture(emit: impl FnOnce()) -> Vec<Value> {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let info = ServiceInfo {
            name: "video-service".into(),
            version: "1.2.3".into(),
            environment: "test".into(),
        };
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .event_format(JsonFormat::new(&info))
                .with_writer(move || writer.clone()),
        );
        tracing::subscriber::with_default(subscriber, emit);
        let text = String::from_utf8(buffer.0.lock().expect("lock").clone()).expect("utf-8");
        text.lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect()
    }

    #[test]
    fn a_line_carries_the_process_and_request_identity() {
        let lines = capture(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            let ctx = RequestContext::new("req-1".into(), "corr-1".into());
            ctx.set_user_id("user-9");
            runtime.block_on(ctx.scope(async {
                tracing::info!(video_id = "v-1", size_bytes = 42_u64, "video uploaded");
            }));
        });
        let line = &lines[0];
        assert_eq!(line["message"], "video uploaded");
        assert_eq!(line["level"], "info");
        assert_eq!(line["service"], "video-service");
        assert_eq!(line["version"], "1.2.3");
        assert_eq!(line["environment"], "test");
        assert_eq!(line["request_id"], "req-1");
        assert_eq!(line["correlation_id"], "corr-1");
        assert_eq!(line["user_id"], "user-9");
        assert_eq!(line["video_id"], "v-1");
        assert_eq!(line["size_bytes"], 42);
        assert!(line["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    }

    #[test]
    fn credentials_are_redacted_at_the_source() {
        let lines = capture(|| {
            tracing::warn!(
                authorization = "Bearer abc.def.ghi",
                password = "hunter2",
                refresh_token = %"rt-123",
                cookie = ?"session=xyz",
                "login attempt"
            );
        });
        let text = lines[0].to_string();
        for secret in ["abc.def.ghi", "hunter2", "rt-123", "session=xyz"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(lines[0]["password"], REDACTED);
        assert_eq!(lines[0]["authorization"], REDACTED);
    }

    #[test]
    fn credentials_are_recognised_by_name() {
        for name in [
            "Authorization",
            "cookie",
            "Set-Cookie",
            "password",
            "new_password",
            "access_token",
            "refresh_token",
            "client_secret",
            "api_key",
        ] {
            assert!(is_sensitive(name), "{name}");
        }
        for name in [
            "user_id",
            "request_id",
            "email_verified",
            "status",
            "message",
        ] {
            assert!(!is_sensitive(name), "{name}");
        }
    }
}
