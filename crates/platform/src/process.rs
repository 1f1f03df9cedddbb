//! What every `main` does, written once: load settings, start telemetry, run until
//! SIGTERM/SIGINT, flush telemetry, exit with a meaningful code.

use std::future::Future;
use std::process::ExitCode;

use telemetry::TelemetrySettings;

use crate::config::{ConfigError, ServerSettings, Sources};
use crate::grpc::Listeners;

/// The shutdown signal handed to a process's `run`.
pub type Shutdown = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// What every process's settings have.
pub trait ProcessSettings {
    fn server(&self) -> &ServerSettings;
    fn telemetry(&self) -> &TelemetrySettings;
}

/// `main` of a gRPC service: settings from the process's sources, listeners bound on the
/// configured ports, then [`run_main`].
pub fn run_grpc_main<S, F, Fut>(
    service: &'static str,
    load: impl FnOnce(&Sources) -> Result<S, ConfigError>,
    run: F,
) -> ExitCode
where
    S: ProcessSettings,
    F: FnOnce(S, Listeners, Shutdown) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    run_main(
        service,
        || load(&Sources::from_process()),
        |s| s.telemetry(),
        |settings, shutdown| async move {
            let listeners = Listeners::bind(settings.server()).await?;
            run(settings, listeners, shutdown).await
        },
    )
}

/// Runs a process. `run` gets the settings and the shutdown signal and returns when the
/// process has drained. Exit codes: 0 after a clean stop, 1 on a runtime failure, 2 on a
/// configuration error (the message names the key).
pub fn run_main<S, F, Fut>(
    service: &'static str,
    load: impl FnOnce() -> Result<S, ConfigError>,
    telemetry_of: impl FnOnce(&S) -> &TelemetrySettings,
    run: F,
) -> ExitCode
where
    F: FnOnce(S, Shutdown) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let settings = match load() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("{service}: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{service}: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let guard = match telemetry::init(service, telemetry_of(&settings)) {
            Ok(guard) => guard,
            Err(e) => {
                eprintln!("{service}: {e}");
                return ExitCode::from(2);
            }
        };
        let code = match run(settings, Box::pin(shutdown_signal())).await {
            Ok(()) => {
                tracing::info!("stopped cleanly");
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "stopped on error");
                ExitCode::FAILURE
            }
        };
        // Flushing blocks; do it off the async workers so the exporter can still run.
        let _ = tokio::task::spawn_blocking(move || guard.shutdown()).await;
        code
    })
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => tracing::info!(signal = "SIGINT", "shutdown requested"),
                    _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutdown requested"),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops this process");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
