//! CPU profiles of the running process, on the admin port when `server.profiling` is on:
//! `GET /debug/pprof/profile?seconds=N` answers a pprof protobuf (`go tool pprof` reads it),
//! `&format=flamegraph` an SVG flame graph. Sampling costs CPU and the profiler is one per
//! process, so a profile lasts at most [`MAX_SECONDS`] and only one runs at a time (409).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use prost::Message as _;
use proto::pprof::{Function, Label, Line, Location, Profile, Sample, ValueType};
use serde::Deserialize;
use serde_json::json;

/// The longest profile, in seconds.
pub const MAX_SECONDS: u64 = 60;
/// The length of a profile when `seconds` is not given.
pub const DEFAULT_SECONDS: u64 = 10;
/// Samples per second: not a multiple of common timer frequencies, so periodic work is not
/// sampled in lockstep.
const FREQUENCY: i32 = 99;

/// Whether a profile is being taken in this process (the profiler is process-wide).
static RUNNING: AtomicBool = AtomicBool::new(false);

/// Frees the profiler when the profile is done, however it ends.
struct Running;

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.store(false, Ordering::SeqCst);
    }
}

#[derive(Debug, Deserialize)]
pub struct ProfileQuery {
    seconds: Option<String>,
    format: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Pprof,
    Flamegraph,
}

fn refuse(status: StatusCode, code: &str, message: String) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": { "code": code, "message": message } }))
}

/// `GET /debug/pprof/profile`.
pub async fn profile(query: web::Query<ProfileQuery>) -> HttpResponse {
    let seconds = match query.seconds.as_deref() {
        None => DEFAULT_SECONDS,
        Some(raw) => match raw.parse::<u64>() {
            Ok(n) if (1..=MAX_SECONDS).contains(&n) => n,
            _ => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "invalid_argument",
                    format!("seconds must be an integer from 1 to {MAX_SECONDS}, got `{raw}`"),
                );
            }
        },
    };
    let format = match query.format.as_deref() {
        None | Some("pprof") => Format::Pprof,
        Some("flamegraph") => Format::Flamegraph,
        Some(other) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "invalid_argument",
                format!("format must be `pprof` or `flamegraph`, got `{other}`"),
            );
        }
    };
    if RUNNING.swap(true, Ordering::SeqCst) {
        return refuse(
            StatusCode::CONFLICT,
            "conflict",
            "a profile is being taken already; try again when it ends".to_owned(),
        );
    }
    let running = Running;
    tracing::info!(seconds, ?format, "CPU profile started");
    // Sampling and symbolising block: off the async workers. The profile finishes (and frees
    // the profiler) even if the client goes away meanwhile.
    let taken = tokio::task::spawn_blocking(move || {
        let _running = running;
        take(Duration::from_secs(seconds), format)
    })
    .await;
    match taken {
        Ok(Ok(body)) => match format {
            Format::Pprof => HttpResponse::Ok()
                .content_type("application/octet-stream")
                .insert_header(("Content-Disposition", "attachment; filename=\"profile.pb\""))
                .body(body),
            Format::Flamegraph => HttpResponse::Ok().content_type("image/svg+xml").body(body),
        },
        Ok(Err(e)) => {
            tracing::error!(error = %e, "CPU profile failed");
            refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal", e)
        }
        Err(e) => {
            tracing::error!(error = %e, "CPU profile failed");
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the profile could not be taken".to_owned(),
            )
        }
    }
}

fn take(duration: Duration, format: Format) -> Result<Vec<u8>, String> {
    let guard = pprof::ProfilerGuardBuilder::default()
        .frequency(FREQUENCY)
        .blocklist(&["libc", "libgcc", "pthread", "vdso"])
        .build()
        .map_err(|e| format!("cannot start the profiler: {e}"))?;
    std::thread::sleep(duration);
    let report = guard
        .report()
        .build()
        .map_err(|e| format!("cannot build the report: {e}"))?;
    match format {
        // A process that stayed idle has no stacks to draw: say so in the picture.
        Format::Flamegraph if report.data.is_empty() => Ok(format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"600\" height=\"40\">\
             <text x=\"10\" y=\"25\">no CPU samples in {} s: the process was idle</text></svg>",
            duration.as_secs()
        )
        .into_bytes()),
        Format::Flamegraph => {
            let mut svg = Vec::new();
            report
                .flamegraph(&mut svg)
                .map_err(|e| format!("cannot draw the flame graph: {e}"))?;
            Ok(svg)
        }
        Format::Pprof => Ok(to_pprof(&report).encode_to_vec()),
    }
}

/// Strings of a profile, each stored once; index 0 is "".
struct Strings {
    table: Vec<String>,
    index: HashMap<String, i64>,
}

impl Strings {
    fn new() -> Self {
        Self {
            table: vec![String::new()],
            index: HashMap::from([(String::new(), 0)]),
        }
    }

    fn id(&mut self, s: &str) -> i64 {
        if let Some(id) = self.index.get(s) {
            return *id;
        }
        let id = i64::try_from(self.table.len()).unwrap_or(i64::MAX);
        self.table.push(s.to_owned());
        self.index.insert(s.to_owned(), id);
        id
    }
}

/// The report in the pprof format: one location per (function, line), samples innermost
/// frame first, valued in samples and CPU nanoseconds, labelled by thread.
fn to_pprof(report: &pprof::Report) -> Profile {
    let mut strings = Strings::new();
    let mut functions: Vec<Function> = Vec::new();
    let mut function_ids: HashMap<(i64, i64), u64> = HashMap::new();
    let mut locations: Vec<Location> = Vec::new();
    let mut location_ids: HashMap<(u64, i64), u64> = HashMap::new();
    let frequency = i64::from(report.timing.frequency.max(1));
    let period = 1_000_000_000 / frequency;
    let thread = strings.id("thread");
    let mut samples = Vec::with_capacity(report.data.len());
    for (frames, count) in &report.data {
        let mut stack = Vec::new();
        for symbol in frames.frames.iter().flatten() {
            let name = strings.id(&symbol.name());
            let file = strings.id(&symbol.filename());
            let next_function = functions.len() as u64 + 1;
            let function = *function_ids.entry((name, file)).or_insert_with(|| {
                functions.push(Function {
                    id: next_function,
                    name,
                    system_name: name,
                    filename: file,
                    start_line: 0,
                });
                next_function
            });
            let line = i64::from(symbol.lineno());
            let next_location = locations.len() as u64 + 1;
            let location = *location_ids.entry((function, line)).or_insert_with(|| {
                locations.push(Location {
                    id: next_location,
                    line: vec![Line {
                        function_id: function,
                        line,
                    }],
                    ..Location::default()
                });
                next_location
            });
            stack.push(location);
        }
        let count = i64::try_from(*count).unwrap_or(0);
        samples.push(Sample {
            location_id: stack,
            value: vec![count, count.saturating_mul(period)],
            label: vec![Label {
                key: thread,
                str: strings.id(&frames.thread_name),
                ..Label::default()
            }],
        });
    }
    let cpu = ValueType {
        r#type: strings.id("cpu"),
        unit: strings.id("nanoseconds"),
    };
    Profile {
        sample_type: vec![
            ValueType {
                r#type: strings.id("samples"),
                unit: strings.id("count"),
            },
            cpu,
        ],
        sample: samples,
        location: locations,
        function: functions,
        time_nanos: report
            .timing
            .start_time
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(0)),
        duration_nanos: i64::try_from(report.timing.duration.as_nanos()).unwrap_or(0),
        period_type: Some(cpu),
        period,
        string_table: strings.table,
        ..Profile::default()
    }
}
