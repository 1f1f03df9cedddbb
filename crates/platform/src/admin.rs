//! The admin HTTP port every process has (`/metrics`, `/health/*`), and the health routes
//! the gateway also serves on its public port.
//!
//! - `/health`: cheap, 200 while the process runs.
//! - `/health/liveness`: 200 while the process runs; never touches dependencies.
//! - `/health/readiness`: 503 while starting (migrations), while a readiness dependency
//!   fails, and from the moment shutdown begins; 200 otherwise.
//! - `/health/detailed`: every dependency probed, 503 with the same body when any fails.
//!   On the gateway's public port it answers each check's status only (no error text, no
//!   timings), from a report at most [`PUBLIC_REPORT_MAX_AGE`] old: anyone on the internet
//!   can call it, and must not learn our internals or make us probe everything per call.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::json;

use crate::faults::{Fault, Faults};
use crate::health::{Checks, DetailedReport, unix_now};

/// How old the report behind the public `/health/detailed` may be.
pub const PUBLIC_REPORT_MAX_AGE: Duration = Duration::from_secs(1);

/// The last detailed report, shared by the public route's callers: one probe run at a
/// time, at most one per [`PUBLIC_REPORT_MAX_AGE`].
#[derive(Clone, Default)]
pub struct ReportCache(Arc<tokio::sync::Mutex<Option<(Instant, DetailedReport)>>>);
use crate::lifecycle::{Lifecycle, Phase};

/// What the health routes need to answer.
#[derive(Clone)]
pub struct HealthState {
    pub service: &'static str,
    pub lifecycle: Lifecycle,
    /// Probed by `/health/readiness`: what this process cannot serve without.
    pub readiness: Checks,
    /// Probed by `/health/detailed`: everything this process talks to.
    pub detailed: Checks,
    /// Behind the public `/health/detailed`.
    pub public_report: ReportCache,
}

/// Mounts `/health`, `/health/liveness`, `/health/readiness`, `/health/detailed` (admin).
pub fn health_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health))
        .route("/health/liveness", web::get().to(liveness))
        .route("/health/readiness", web::get().to(readiness))
        .route("/health/detailed", web::get().to(detailed));
}

/// The same routes for a public port: `/health/detailed` tells each check's status only.
pub fn public_health_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health))
        .route("/health/liveness", web::get().to(liveness))
        .route("/health/readiness", web::get().to(readiness))
        .route("/health/detailed", web::get().to(public_detailed));
}

async fn health(state: web::Data<HealthState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "status": "healthy",
        "timestamp": unix_now(),
        "service": state.service,
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

async fn liveness() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "alive" }))
}

async fn readiness(state: web::Data<HealthState>) -> HttpResponse {
    let not_ready = |reason: String| {
        HttpResponse::ServiceUnavailable().json(json!({ "status": "not_ready", "reason": reason }))
    };
    match state.lifecycle.phase() {
        Phase::Starting => return not_ready("starting".into()),
        Phase::Draining => return not_ready("shutting_down".into()),
        Phase::Ready => {}
    }
    let failing: Vec<String> = state
        .readiness
        .run()
        .await
        .into_iter()
        .filter(|(_, r)| !r.is_healthy())
        .map(|(name, _)| name)
        .collect();
    if failing.is_empty() {
        HttpResponse::Ok().json(json!({ "status": "ready" }))
    } else {
        not_ready(format!("unhealthy: {}", failing.join(", ")))
    }
}

async fn detailed(state: web::Data<HealthState>) -> HttpResponse {
    let report = DetailedReport::new(state.service, state.detailed.run().await);
    if report.is_healthy() {
        HttpResponse::Ok().json(report)
    } else {
        HttpResponse::ServiceUnavailable().json(report)
    }
}

async fn public_detailed(state: web::Data<HealthState>) -> HttpResponse {
    let report = {
        let mut cached = state.public_report.0.lock().await;
        match cached.as_ref() {
            Some((at, report)) if at.elapsed() < PUBLIC_REPORT_MAX_AGE => report.clone(),
            _ => {
                let report = DetailedReport::new(state.service, state.detailed.run().await);
                *cached = Some((Instant::now(), report.clone()));
                report
            }
        }
    };
    let checks: serde_json::Map<String, serde_json::Value> = report
        .checks
        .iter()
        .map(|(name, check)| (name.clone(), json!({ "status": check.status })))
        .collect();
    let body = json!({
        "status": report.status,
        "timestamp": report.timestamp,
        "service": report.service,
        "version": report.version,
        "checks": checks,
    });
    if report.is_healthy() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(telemetry::metrics::render())
}

/// `GET /admin/faults`, `PUT /admin/faults/{rpc}` (a JSON [`Fault`]),
/// `DELETE /admin/faults/{rpc}`.
fn fault_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/faults", web::get().to(list_faults))
        .route("/admin/faults/{rpc}", web::put().to(set_fault))
        .route("/admin/faults/{rpc}", web::delete().to(clear_fault));
}

fn admin_error(status: actix_web::http::StatusCode, code: &str, message: String) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": { "code": code, "message": message } }))
}

async fn list_faults(faults: web::Data<Faults>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "faults": faults.list() }))
}

async fn set_fault(
    faults: web::Data<Faults>,
    rpc: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    use actix_web::http::StatusCode;
    let fault: Fault = match serde_json::from_slice(&body) {
        Ok(fault) => fault,
        Err(e) => {
            return admin_error(
                StatusCode::BAD_REQUEST,
                "invalid_argument",
                format!(
                    "expected {{\"kind\": \"error\", \"code\", \"ratio\"}} or \
                     {{\"kind\": \"latency\", \"delay_ms\", \"ratio\"}}: {e}"
                ),
            );
        }
    };
    match faults.set(&rpc, fault.clone()) {
        Ok(()) => HttpResponse::Ok().json(json!({ "rpc": rpc.as_str(), "fault": fault })),
        Err(message) => admin_error(StatusCode::BAD_REQUEST, "invalid_argument", message),
    }
}

async fn clear_fault(faults: web::Data<Faults>, rpc: web::Path<String>) -> HttpResponse {
    if faults.clear(&rpc) {
        HttpResponse::NoContent().finish()
    } else {
        admin_error(
            actix_web::http::StatusCode::NOT_FOUND,
            "not_found",
            format!("no fault is active on {rpc}"),
        )
    }
}

/// A running admin server.
pub struct AdminServer {
    handle: ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl AdminServer {
    /// Serves the admin routes on `listener` until [`AdminServer::stop`]; with `faults`,
    /// also the fault injection routes; with `profiling`, CPU profiles.
    pub fn start(
        listener: TcpListener,
        state: HealthState,
        faults: Option<Faults>,
        profiling: bool,
    ) -> std::io::Result<Self> {
        let data = web::Data::new(state);
        let faults = faults.map(web::Data::new);
        let server: Server = HttpServer::new(move || {
            let app = App::new()
                .app_data(data.clone())
                .configure(health_routes)
                .route("/metrics", web::get().to(metrics))
                .configure(|cfg| {
                    if profiling {
                        cfg.route(
                            "/debug/pprof/profile",
                            web::get().to(crate::profiling::profile),
                        );
                    }
                });
            match &faults {
                Some(faults) => app.app_data(faults.clone()).configure(fault_routes),
                None => app,
            }
        })
        .listen(listener)?
        .workers(1)
        // Our own signal handling drives shutdown, in order: readiness first.
        .disable_signals()
        .shutdown_timeout(2)
        .run();
        let handle = server.handle();
        Ok(Self {
            handle,
            task: tokio::spawn(server),
        })
    }

    pub async fn stop(self) {
        self.handle.stop(true).await;
        let _ = self.task.await;
    }
}
