//! The life of a gRPC service process, written once for all of them: admin port up first
//! (so readiness answers 503 while migrating), migrations, ready, serve, drain, stop.

use std::future::Future;

use serde::de::DeserializeOwned;
use tonic::service::Routes;

use crate::Lifecycle;
use crate::admin::{AdminServer, HealthState, ReportCache};
use crate::config::{ConfigError, SHARED_DEFAULTS, ServerSettings, Sources};
use crate::database::{Db, Migration};
use crate::faults::Faults;
use crate::grpc::Listeners;
use crate::health::{Checks, Probe};
use crate::identity::IdentityKey;
use crate::process::ProcessSettings;
use crate::worker::{Worker, Workers};

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

/// A gRPC service of Social Flow, declared once: the platform loads its settings, opens
/// its database, migrates its schema, serves its routes (with health, identity, telemetry
/// and fault injection), runs its workers and drains it all on shutdown.
///
/// Adding a service is writing its domain and adapter and one `impl Service`.
pub trait Service: 'static {
    /// The process name, on every log line, span and metric.
    const NAME: &'static str;
    /// The crate's `tracing` target (`env!("CARGO_CRATE_NAME")`): its spans are exported.
    const CRATE: &'static str;
    /// The Postgres schema the service owns and migrates.
    const SCHEMA: &'static str;
    const MIGRATIONS: &'static [Migration];
    /// The service's compiled-in defaults (`include_str!("../config/default.toml")`).
    const DEFAULTS: &'static str;
    type Settings: DeserializeOwned + ProcessSettings + Send + Sync + 'static;

    /// The service's gRPC routes, and what else it probes and runs.
    fn build(
        settings: &Self::Settings,
        shared: &Shared,
    ) -> impl Future<Output = anyhow::Result<Parts>> + Send;
}

/// Declares a service in one place: its type, name, schema, compiled-in defaults, the
/// settings sections of its own (`server`, `database` and `telemetry` every service has),
/// its builder and its migrations. This defines `Settings` and the service type; the
/// `CRATE` it reports is the invoking crate's own name.
///
/// ```ignore
/// platform::grpc_service! {
///     pub struct Service: "video-service", schema "videos", build build,
///     defaults include_str!("../config/default.toml"),
///     settings { s3: S3Settings, auth: InternalAuthSettings },
///     migrations [(1, "videos", include_str!("../migrations/0001_videos.sql"))]
/// }
/// ```
#[macro_export]
macro_rules! grpc_service {
    {
        $vis:vis struct $ty:ident: $name:literal, schema $schema:literal, build $build:path,
        defaults $defaults:expr,
        settings { $($field:ident: $field_ty:ty),* $(,)? },
        migrations [$(($version:literal, $migration:literal, $sql:expr)),* $(,)?]
    } => {
        #[doc = concat!("The settings of ", $name, ".")]
        #[derive(Debug, Clone, $crate::__serde::Deserialize)]
        #[serde(crate = "platform::__serde")]
        $vis struct Settings {
            pub server: $crate::config::ServerSettings,
            pub database: $crate::config::DatabaseSettings,
            pub telemetry: $crate::process::TelemetrySettings,
            $(pub $field: $field_ty,)*
        }

        $crate::process_settings!(Settings);

        #[doc = concat!($name, ", as the platform runs it.")]
        $vis struct $ty;

        impl $crate::service::Service for $ty {
            const NAME: &'static str = $name;
            const CRATE: &'static str = env!("CARGO_CRATE_NAME");
            const SCHEMA: &'static str = $schema;
            const MIGRATIONS: &'static [$crate::database::Migration] = &[$(
                $crate::database::Migration { version: $version, name: $migration, sql: $sql }
            ),*];
            const DEFAULTS: &'static str = $defaults;
            type Settings = Settings;

            fn build(
                settings: &Settings,
                shared: &$crate::service::Shared,
            ) -> impl ::std::future::Future<
                Output = $crate::__anyhow::Result<$crate::service::Parts>,
            > + Send {
                $build(settings, shared)
            }
        }
    };
}

/// What the platform hands every service to build on.
pub struct Shared {
    /// The service's database (its schema is migrated before anything is served).
    pub db: Db,
    /// Signs the internal identity tokens of the service's own outgoing calls.
    pub identity: IdentityKey,
    pub server: ServerSettings,
}

impl Shared {
    /// The largest request message the service accepts (`server.grpc_max_message_bytes`).
    pub fn max_message_bytes(&self) -> usize {
        self.server.grpc_max_message_bytes
    }
}

/// What a service is made of besides the platform's part.
pub struct Parts {
    routes: Routes,
    dependencies: Vec<(String, Probe)>,
    workers: Vec<Worker>,
}

impl Parts {
    /// The service's gRPC routes (`grpc.health.v1.Health` is added by the platform).
    pub fn new(routes: Routes) -> Self {
        Self {
            routes,
            dependencies: Vec::new(),
            workers: Vec::new(),
        }
    }

    /// A service serving one generated gRPC server.
    pub fn grpc<S>(server: S) -> Self
    where
        S: tower::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = std::convert::Infallible,
            > + tonic::server::NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        Self::new(Routes::new(server))
    }

    /// Another dependency `/health/detailed` probes (the database always is).
    pub fn with_dependency(mut self, name: &str, probe: Probe) -> Self {
        self.dependencies.push((name.to_owned(), probe));
        self
    }

    /// A background worker, started after migrations, drained on shutdown.
    pub fn with_worker(mut self, worker: Worker) -> Self {
        self.workers.push(worker);
        self
    }
}

/// Loads the settings of service `S`.
pub fn load<S: Service>(sources: &Sources) -> Result<S::Settings, ConfigError> {
    load_settings::<S::Settings>(S::DEFAULTS, sources)
}

/// `main` of service `S`.
pub fn main<S: Service>() -> std::process::ExitCode {
    crate::process::run_grpc_main(S::NAME, &[S::CRATE], load::<S>, run::<S>)
}

/// Runs service `S` on `listeners` until `shutdown` resolves, then: readiness turns 503,
/// workers are told to drain, the gRPC server stops accepting and in-flight RPCs and
/// workers get the grace period to finish.
pub async fn run<S: Service>(
    settings: S::Settings,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let server = settings.server().clone();
    let pool = crate::database::pool(settings.database())?;
    let shared = Shared {
        db: Db::new(pool.clone()),
        identity: IdentityKey::new(&settings.internal_auth(), S::NAME),
        server: server.clone(),
    };
    let parts = S::build(&settings, &shared).await?;

    telemetry::metrics::record_build_info(S::NAME);
    crate::database::spawn_pool_gauge(pool.clone(), S::NAME);
    let lifecycle = Lifecycle::new();
    let faults = Faults::new(S::NAME);
    let mut readiness = vec![("database".to_owned(), Probe::Postgres(pool.clone()))];
    for worker in &parts.workers {
        readiness.push((
            format!("worker:{}", worker.name()),
            Probe::Worker(worker.health()),
        ));
    }
    let mut everything = readiness.clone();
    everything.extend(parts.dependencies);
    let admin = AdminServer::start(
        listeners.admin,
        HealthState {
            service: S::NAME,
            lifecycle: lifecycle.clone(),
            readiness: Checks::new(readiness),
            detailed: Checks::new(everything),
            public_report: ReportCache::default(),
        },
        server.fault_injection.then(|| faults.clone()),
        server.profiling,
    )?;

    if let Err(e) = crate::database::migrate(&pool, S::SCHEMA, S::MIGRATIONS).await {
        admin.stop().await;
        return Err(e.into());
    }
    let workers = Workers::start(parts.workers);
    lifecycle.mark_ready();
    tracing::info!(service = S::NAME, "ready");

    let (health, health_service) = tonic_health::server::health_reporter();
    let routes = parts.routes.add_service(health_service);
    let grace = server.shutdown_grace();
    // Workers are told to drain the moment shutdown begins, alongside the RPCs.
    let trigger = workers.drain_trigger();
    let shutdown = async move {
        shutdown.await;
        trigger.fire();
    };
    let served = crate::grpc::serve(
        listeners.grpc,
        lifecycle,
        health,
        grace,
        shutdown,
        move |incoming, drain| {
            crate::grpc::server(faults, &server, shared.identity)
                .add_routes(routes)
                .serve_with_incoming_shutdown(incoming, drain)
        },
    )
    .await;
    let drained = workers.drain(grace).await;
    admin.stop().await;
    served.and(drained)
}
