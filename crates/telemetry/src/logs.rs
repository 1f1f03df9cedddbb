//! JSON log lines: one event, one line, with the fields ARCHITECTURE.md promises.
//!
//! `timestamp`, `level`, `service`, `version`, `environment`, `message`, `target`,
//! `trace_id`, `span_id` (when inside a traced span), `request_id`, `correlation_id`,
//! `user_id` (inside a request), then the event's own fields. Fields whose name says they
//! hold a secret are replaced by `[REDACTED]` here, at the source.

use std::fmt;

use opentelemetry::trace::TraceContextExt;
use std::fmt::Write as _;
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
    // Case-insensitive, without a lowercased copy (this runs for every field logged).
    let name = name.as_bytes();
    EXACT
        .iter()
        .any(|e| name.eq_ignore_ascii_case(e.as_bytes()))
        || PARTS.iter().any(|p| {
            name.windows(p.len())
                .any(|w| w.eq_ignore_ascii_case(p.as_bytes()))
        })
}

/// Span fields are never written: the JSON lines carry the request's identity from its
/// context instead. Without this, the fmt layer would format every span's fields into a
/// string (with ANSI colours) that nothing reads.
pub struct NoSpanFields;

impl<'w> FormatFields<'w> for NoSpanFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        _writer: Writer<'w>,
        _fields: R,
    ) -> fmt::Result {
        Ok(())
    }
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
    /// Written straight into the line buffer, field by field: no map, no intermediate
    /// values (this runs for every request's access log line).
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut message = MessageVisitor(None);
        event.record(&mut message);
        let message = message.0.unwrap_or_default();
        let client_fault = is_client_fault(meta.target(), *meta.level(), &message);
        let w = &mut writer;
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        w.write_str("{\"timestamp\":\"")?;
        w.write_str(&now)?;
        w.write_str("\",\"level\":\"")?;
        w.write_str(match (client_fault, *meta.level()) {
            (true, _) | (_, tracing::Level::WARN) => "warn",
            (_, tracing::Level::ERROR) => "error",
            (_, tracing::Level::INFO) => "info",
            (_, tracing::Level::DEBUG) => "debug",
            (_, tracing::Level::TRACE) => "trace",
        })?;
        w.write_char('"')?;
        let mut written = Written::default();
        if client_fault {
            w.write_str(",\"client_error\":true")?;
            written.client_error = true;
        }
        string_field(w, "service", &self.service)?;
        string_field(w, "version", &self.version)?;
        string_field(w, "environment", &self.environment)?;
        string_field(w, "message", &message)?;
        string_field(w, "target", meta.target())?;

        // The OpenTelemetry layer activates a span's context when the span is entered, so
        // the current context is the one of the span this event happens in.
        let otel_cx = opentelemetry::Context::current();
        let span_cx = otel_cx.span().span_context().clone();
        if span_cx.is_valid() {
            w.write_str(",\"trace_id\":\"")?;
            write!(w, "{}", span_cx.trace_id())?;
            w.write_str("\",\"span_id\":\"")?;
            write!(w, "{}", span_cx.span_id())?;
            w.write_char('"')?;
            written.trace = true;
        }
        if let Some(ctx) = RequestContext::current() {
            string_field(w, "request_id", ctx.request_id())?;
            string_field(w, "correlation_id", ctx.correlation_id())?;
            written.request = true;
            if let Some(user_id) = ctx.user_id() {
                string_field(w, "user_id", user_id)?;
                written.user = true;
            }
        }
        let mut fields = FieldWriter {
            out: w,
            written,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_str("}\n")
    }
}

/// Which of the line's own keys it has: an event field of the same name is left out.
#[derive(Default)]
struct Written {
    client_error: bool,
    trace: bool,
    request: bool,
    user: bool,
}

impl Written {
    fn has(&self, key: &str) -> bool {
        match key {
            "timestamp" | "level" | "service" | "version" | "environment" | "message"
            | "target" => true,
            "client_error" => self.client_error,
            "trace_id" | "span_id" => self.trace,
            "request_id" | "correlation_id" => self.request,
            "user_id" => self.user,
            _ => false,
        }
    }
}

/// `,"key":"value"` with the value escaped.
fn string_field(w: &mut impl fmt::Write, key: &str, value: &str) -> fmt::Result {
    w.write_str(",\"")?;
    w.write_str(key)?;
    w.write_str("\":\"")?;
    Escaped(w).write_str(value)?;
    w.write_char('"')
}

/// Writes what it is given as the inside of a JSON string.
struct Escaped<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Byte by byte: every byte that needs escaping is ASCII, and no byte of a multi-byte
        // character is below 0x80, so the runs between escapes are whole characters.
        let mut plain = 0;
        for (i, b) in s.bytes().enumerate() {
            let escape = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                b if b < b' ' => "",
                _ => continue,
            };
            self.0.write_str(&s[plain..i])?;
            if escape.is_empty() {
                write!(self.0, "\\u{b:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            plain = i + 1;
        }
        self.0.write_str(&s[plain..])
    }
}

/// actix-http logs a connection's stream errors (a malformed request line or header, a
/// body cut short, a client that hung up) at `error`: they are the client's faults, not the
/// system's, and an error-rate alert on logs would page on every port scanner. Written at
/// `warn` with `client_error: true` instead.
fn is_client_fault(target: &str, level: tracing::Level, message: &str) -> bool {
    level == tracing::Level::ERROR
        && target.starts_with("actix_http::h1")
        && message.starts_with("stream error")
}

/// The event's `message`, and nothing else.
struct MessageVisitor(Option<String>);

impl Visit for MessageVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = Some(value.to_owned());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

/// Every other field of the event, as `,"name":value`, credentials redacted by name.
struct FieldWriter<'a, W: fmt::Write> {
    out: &'a mut W,
    written: Written,
    result: fmt::Result,
}

impl<W: fmt::Write> FieldWriter<'_, W> {
    /// Writes `,"name":` and then the value with `value`, unless the field is left out.
    fn put(&mut self, field: &Field, value: impl FnOnce(&mut W) -> fmt::Result) {
        let name = field.name();
        if self.result.is_err() || self.written.has(name) {
            return;
        }
        self.result = (|| {
            self.out.write_str(",\"")?;
            Escaped(&mut *self.out).write_str(name)?;
            self.out.write_str("\":")?;
            // `log` crate records arrive through tracing-log with `log.` prefixed fields.
            if is_sensitive(name) {
                self.out.write_str("\"")?;
                self.out.write_str(REDACTED)?;
                self.out.write_str("\"")
            } else {
                value(self.out)
            }
        })();
    }

    fn put_text(&mut self, field: &Field, text: impl fmt::Display) {
        self.put(field, |w| {
            w.write_char('"')?;
            write!(Escaped(w), "{text}")?;
            w.write_char('"')
        });
    }
}

impl<W: fmt::Write> Visit for FieldWriter<'_, W> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, |w| {
            if value.is_finite() {
                write!(w, "{value}")
            } else {
                w.write_str("null")
            }
        });
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, |w| write!(w, "{value}"));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, |w| write!(w, "{value}"));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, |w| w.write_str(if value { "true" } else { "false" }));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put_text(field, value);
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put_text(field, ErrorChain(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put_text(field, format_args!("{value:?}"));
    }
}

/// An error and its sources, `: `-separated.
struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::Value;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    fn text_is_escaped_into_a_json_string_that_reads_back_the_same() {
        use std::fmt::Write as _;
        for text in [
            "plain",
            "a \"quote\" and \\",
            "line\nbreak\r\ttab",
            "nul\0bell\u{7}",
            "héllo ✓ 日本",
            "",
        ] {
            let mut out = String::from("\"");
            Escaped(&mut out).write_str(text).expect("write");
            out.push('"');
            let back: String = serde_json::from_str(&out).expect("valid JSON string");
            assert_eq!(back, text, "{out}");
        }
    }

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
    fn any_text_makes_valid_json_and_the_line_keeps_its_own_keys() {
        let weird = "quote \" backslash \\ newline \n tab \t nul \u{0} bell \u{7} é ✓";
        let error = std::io::Error::other("disk \"full\"");
        let lines = capture(|| {
            tracing::error!(
                text = weird,
                debug = ?weird,
                ratio = f64::NAN,
                count = -3_i64,
                ok = true,
                error = &error as &(dyn std::error::Error + 'static),
                service = "spoofed",
                "message with {} and \"quotes\"",
                weird
            );
        });
        let line = &lines[0];
        assert_eq!(line["text"], weird);
        assert_eq!(line["debug"], format!("{weird:?}"));
        assert_eq!(line["ratio"], Value::Null);
        assert_eq!(line["count"], -3);
        assert_eq!(line["ok"], true);
        assert_eq!(line["error"], "disk \"full\"");
        assert_eq!(
            line["service"], "video-service",
            "an event cannot overwrite the line's keys"
        );
        assert_eq!(
            line["message"],
            format!("message with {weird} and \"quotes\"")
        );
        assert_eq!(line["level"], "error");
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
