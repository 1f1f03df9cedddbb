//! The life of a gRPC service process, written once for all of them: admin port up first
//! (so readiness answers 503 while migrating), migrations, ready, serve, drain, stop.

use std::future::Future;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use telemetry::TelemetrySettings;
use tonic::service::Routes;

use crate::Lifecycle;
use crate::admin::{AdminServer, HealthState, ReportCache};
use crate::config::{
    ConfigError, DatabaseSettings, InternalAuthSettings, SHARED_DEFAULTS, ServerSettings, Sources,
};
use crate::database::{Migration, PgPool};
use crate::faults::Faults;
use crate::grpc::Listeners;
use crate::health::{Checks, Probe};
use crate::identity::IdentityKey;
use crate::process::ProcessSettings;

/// Loads a process's settings: shared defaults, then the process's own compiled-in
/// defaults, then `config/<env>.toml`, then the environment; then refuses unusable keys.
pub fn load_settings<T: DeserializeOwned + ProcessSettings>(
    service_defaults: &str,
    sources: &Sources,
) -> Result<T, ConfigError> {
    let settings: T = crate::config::load(&[SHARED_DEFAULTS, service_defaults], sources)?;
    settings.validate_auth()?;
    Ok(settings)
}

/// Settings of a service whose only dependency is its database.
#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseServiceSettings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub auth: InternalAuthSettings,
    pub telemetry: TelemetrySettings,
}

crate::process_settings!(DatabaseServiceSettings);

/// What differs between services.
pub struct ServiceSpec {
    pub name: &'static str,
    /// The Postgres schema the service owns and migrates.
    pub schema: &'static str,
    pub migrations: &'static [Migration],
    pub pool: PgPool,
    /// Dependencies probed by `/health/detailed` besides the database (which is always
    /// probed, and is the one readiness depends on).
    pub other_dependencies: Vec<(String, Probe)>,
    pub server: ServerSettings,
    /// Verifies the internal identity token of every call.
    pub identity: IdentityKey,
}

impl ServiceSpec {
    pub fn new(
        name: &'static str,
        schema: &'static str,
        migrations: &'static [Migration],
        pool: PgPool,
        settings: &impl ProcessSettings,
    ) -> Self {
        Self {
            name,
            schema,
            migrations,
            pool,
            other_dependencies: Vec::new(),
            server: settings.server().clone(),
            identity: IdentityKey::new(&settings.internal_auth(), name),
        }
    }

    /// Another dependency `/health/detailed` probes.
    pub fn with_dependency(mut self, name: &str, probe: Probe) -> Self {
        self.other_dependencies.push((name.to_owned(), probe));
        self
    }
}

/// Runs the service with `routes` (its gRPC services; `grpc.health.v1.Health` is added
/// here) until `shutdown` resolves, then drains and returns.
pub async fn run(
    spec: ServiceSpec,
    listeners: Listeners,
    routes: Routes,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    telemetry::metrics::record_build_info(spec.name);
    crate::database::spawn_pool_gauge(spec.pool.clone(), spec.name);
    let lifecycle = Lifecycle::new();
    let faults = Faults::new(spec.name);
    let database = ("database".to_owned(), Probe::Postgres(spec.pool.clone()));
    let mut everything = vec![database.clone()];
    everything.extend(spec.other_dependencies);
    let admin = AdminServer::start(
        listeners.admin,
        HealthState {
            service: spec.name,
            lifecycle: lifecycle.clone(),
            readiness: Checks::new(vec![database]),
            detailed: Checks::new(everything),
            public_report: ReportCache::default(),
        },
        spec.server.fault_injection.then(|| faults.clone()),
    )?;

    if let Err(e) = crate::database::migrate(&spec.pool, spec.schema, spec.migrations).await {
        admin.stop().await;
        return Err(e.into());
    }
    lifecycle.mark_ready();
    tracing::info!(service = spec.name, "ready");

    let (health, health_service) = tonic_health::server::health_reporter();
    let routes = routes.add_service(health_service);
    let server = spec.server;
    let result = crate::grpc::serve(
        listeners.grpc,
        lifecycle,
        health,
        server.shutdown_grace(),
        shutdown,
        move |incoming, drain| {
            crate::grpc::server(faults, &server, spec.identity)
                .add_routes(routes)
                .serve_with_incoming_shutdown(incoming, drain)
        },
    )
    .await;
    admin.stop().await;
    result
}
