//! What every `main` does, written once: load settings, start telemetry, run until
//! SIGTERM/SIGINT, flush telemetry, exit with a meaningful code. `<binary> healthcheck`
//! asks the running process's admin port whether it is ready (for container healthchecks,
//! where no curl is installed).

use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

pub use telemetry::TelemetrySettings;

use crate::config::{ConfigError, ServerSettings, Sources};
use crate::grpc::Listeners;

/// The shutdown signal handed to a process's `run`.
pub type Shutdown = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// What every process's settings have.
pub trait ProcessSettings {
    fn server(&self) -> &ServerSettings;
    fn database(&self) -> &crate::config::DatabaseSettings;
    fn telemetry(&self) -> &TelemetrySettings;
    /// Refuses unusable keys in `[auth]` (short, or the development ones unless allowed).
    fn validate_auth(&self) -> Result<(), ConfigError>;
    /// The key internal identity tokens are signed and verified with.
    fn internal_auth(&self) -> crate::config::InternalAuthSettings;
}

/// Implements [`ProcessSettings`] for a settings struct with `server`, `database`,
/// `telemetry` and `auth` (an `AuthSettings` or `InternalAuthSettings`) fields.
#[macro_export]
macro_rules! process_settings {
    ($settings:ty) => {
        impl $crate::process::ProcessSettings for $settings {
            fn server(&self) -> &$crate::config::ServerSettings {
                &self.server
            }
            fn database(&self) -> &$crate::config::DatabaseSettings {
                &self.database
            }
            fn telemetry(&self) -> &$crate::process::TelemetrySettings {
                &self.telemetry
            }
            fn validate_auth(&self) -> Result<(), $crate::config::ConfigError> {
                self.auth.validate()
            }
            fn internal_auth(&self) -> $crate::config::InternalAuthSettings {
                self.auth.internal()
            }
        }
    };
}

/// `main` of a gRPC service: settings from the process's sources, listeners bound on the
/// configured ports, then [`run_main`].
pub fn run_grpc_main<S, F, Fut>(
    service: &'static str,
    span_targets: &[&'static str],
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
        span_targets,
        load,
        |settings, shutdown| async move {
            let listeners = Listeners::bind(settings.server()).await?;
            run(settings, listeners, shutdown).await
        },
    )
}

/// Runs a process. `run` gets the settings and the shutdown signal and returns when the
/// process has drained. The spans of `span_targets` (the process's crates; `platform` and
/// `telemetry` always) are exported. Exit codes: 0 after a clean stop, 1 on a runtime failure, 2 on a
/// configuration error (the message names the key).
pub fn run_main<S, F, Fut>(
    service: &'static str,
    span_targets: &[&'static str],
    load: impl FnOnce(&Sources) -> Result<S, ConfigError>,
    run: F,
) -> ExitCode
where
    S: ProcessSettings,
    F: FnOnce(S, Shutdown) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let healthcheck_mode = std::env::args().nth(1).as_deref() == Some("healthcheck");
    let settings = match load(&Sources::from_process()) {
        Ok(settings) => settings,
        // Container runtimes reserve healthcheck exit code 2: there it is just "unhealthy".
        Err(e) if healthcheck_mode => {
            println!("{service}: not ready ({e})");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("{service}: {e}");
            return ExitCode::from(2);
        }
    };
    if healthcheck_mode {
        return healthcheck(service, settings.server());
    }
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
        let targets: Vec<&str> = std::iter::once("platform")
            .chain(span_targets.iter().copied())
            .collect();
        let guard = match telemetry::init(service, settings.telemetry(), &targets) {
            Ok(guard) => guard,
            Err(e) => {
                eprintln!("{service}: {e}");
                return ExitCode::from(2);
            }
        };
        // Handlers are installed now, before start-up work (migrations) begins, so a
        // SIGTERM during start-up is a clean stop too, not the default kill.
        let shutdown = match shutdown_signal() {
            Ok(signal) => signal,
            Err(e) => {
                tracing::error!(error = %e, "cannot install signal handlers");
                return ExitCode::FAILURE;
            }
        };
        let code = match run(settings, shutdown).await {
            Ok(()) => {
                tracing::info!("stopped cleanly");
                ExitCode::SUCCESS
            }
            // A setting only found wrong when used (an unparsable URL, say) is still a
            // configuration error: one line naming the key, exit code 2.
            Err(e) if e.downcast_ref::<ConfigError>().is_some() => {
                tracing::error!(error = %e, "invalid configuration");
                eprintln!("{service}: {e}");
                ExitCode::from(2)
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

/// Resolves on the first SIGTERM or SIGINT (Ctrl-C) after this call.
pub fn shutdown_signal() -> std::io::Result<Shutdown> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(Box::pin(async move {
        tokio::select! {
            _ = int.recv() => tracing::info!(signal = "SIGINT", "shutdown requested"),
            _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutdown requested"),
        }
    }))
}

/// `GET /health/readiness` on the admin port over loopback: exit 0 when ready, 1 when not
/// ready or not answering. Plain HTTP/1.0 on a socket, so images need no curl.
fn healthcheck(service: &str, server: &ServerSettings) -> ExitCode {
    let addr = SocketAddr::from(([127, 0, 0, 1], server.admin_port));
    match readiness_status(addr) {
        Ok(200) => {
            println!("{service}: ready");
            ExitCode::SUCCESS
        }
        Ok(status) => {
            println!("{service}: not ready (readiness answered {status})");
            ExitCode::FAILURE
        }
        Err(e) => {
            println!("{service}: not ready (admin port {addr}: {e})");
            ExitCode::FAILURE
        }
    }
}

fn readiness_status(addr: SocketAddr) -> std::io::Result<u16> {
    let timeout = Duration::from_secs(3);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(b"GET /health/readiness HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head)?;
    // "HTTP/1.1 200 OK"
    std::str::from_utf8(&head[..n])
        .ok()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP answer"))
}
