//! The test harness: the real Social Flow processes, started in-process on port 0 against
//! real Postgres, Redis and an S3-compatible server, each test with its own database, key
//! prefix and bucket; plus an in-process OTLP collector and a log capture.
//!
//! External requirements: Postgres at `SOCIALFLOW_TEST_PG` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), Redis at `SOCIALFLOW_TEST_REDIS`
//! (default `redis://127.0.0.1:6379`), and the `s3s-fs` binary on PATH (or at
//! `SOCIALFLOW_TEST_S3FS`); `scripts/install-test-deps.sh` installs it.

mod app;
mod collector;
mod logs;
mod postgres;
pub mod process;
mod proxy;
mod s3;

pub use app::{ServiceName, TestApp, TestAppBuilder};
pub use collector::{CapturedSpan, Collector};
pub use logs::LogCapture;
pub use postgres::{OwnCluster, TestDatabase};
pub use proxy::TcpProxy;
pub use s3::S3Server;

use std::sync::OnceLock;
use std::time::Duration;

/// Telemetry of the test process: initialised once, exporting to the in-process collector
/// and logging into the capture. Runs on its own runtime thread so it outlives each test's
/// runtime (`cargo test` runs many tests in one process; nextest one per process).
pub struct TestTelemetry {
    pub collector: Collector,
    pub logs: LogCapture,
    guard: telemetry::TelemetryGuard,
}

impl TestTelemetry {
    /// Exports every finished span to the collector now.
    pub fn flush(&self) {
        self.guard.force_flush();
    }

    /// Flushes until `predicate` holds on the collected spans, or `timeout` passes.
    pub async fn wait_for_spans(
        &self,
        timeout: Duration,
        predicate: impl Fn(&[CapturedSpan]) -> bool,
    ) -> Vec<CapturedSpan> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let me: &'static TestTelemetry = telemetry();
            // Flushing blocks; keep it off the async workers.
            let _ = tokio::task::spawn_blocking(move || me.flush()).await;
            let spans = self.collector.spans();
            if predicate(&spans) || tokio::time::Instant::now() >= deadline {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

static TELEMETRY: OnceLock<TestTelemetry> = OnceLock::new();

/// Every process runs in the test process: all their crates' spans are exported.
const SPAN_TARGETS: &[&str] = &[
    "platform",
    "gateway",
    "user_service",
    "video_service",
    "engagement_service",
    "payments_service",
];

/// The process's test telemetry, started on first use.
pub fn telemetry() -> &'static TestTelemetry {
    TELEMETRY.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("test-telemetry".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .expect("telemetry runtime");
                runtime.block_on(async move {
                    let collector = Collector::start().await;
                    let logs = LogCapture::default();
                    let settings = telemetry::TelemetrySettings {
                        log_level: "info".into(),
                        environment: "test".into(),
                        otlp_endpoint: format!("http://{}", collector.addr()),
                        sampler: "parentbased_always_on".into(),
                        sampler_arg: 1.0,
                        ..telemetry::TelemetrySettings::default()
                    };
                    let guard = telemetry::init_with_writer(
                        "socialflow-test",
                        &settings,
                        SPAN_TARGETS,
                        logs.clone(),
                    )
                    .expect("telemetry starts");
                    tx.send(TestTelemetry {
                        collector,
                        logs,
                        guard,
                    })
                    .expect("hand over telemetry");
                    // Keep the runtime (exporter, collector) alive for the whole process.
                    std::future::pending::<()>().await;
                });
            })
            .expect("spawn telemetry thread");
        rx.recv().expect("telemetry started")
    })
}

/// A free TCP port on 127.0.0.1 (for children that must be told their port).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A short random suffix for names that must be unique per test.
pub fn unique_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}
