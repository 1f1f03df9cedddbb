//! The gateway: the REST edge of Social Flow. HTTP/JSON in, gRPC to the services out,
//! with trace context, request ids and RED metrics on every request.

mod cache;
mod canonical;
mod clients;
mod config;
mod edge;
mod error;
mod routes;
mod shed;

use std::future::Future;

use std::time::Duration;

use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use platform::Lifecycle;
use platform::admin::{AdminServer, HealthState, ReportCache, public_health_routes};
use platform::health::{Checks, Probe};
use platform::identity::IdentityKey;
use platform::redis::{KeySpace, RedisClient};
use telemetry::http::RequestTelemetry;

pub use clients::Clients;
pub use config::{HttpSettings, ServicesSettings, Settings, UploadSettings};
pub use error::ApiError;
pub use routes::openapi_document;

pub const SERVICE: &str = "gateway";

pub fn load_settings(
    sources: &platform::config::Sources,
) -> Result<Settings, platform::config::ConfigError> {
    Settings::load_from(sources)
}

/// The gateway's two listeners. Tests bind port 0; `main` binds the configured ports.
pub struct Listeners {
    pub http: std::net::TcpListener,
    pub admin: std::net::TcpListener,
}

impl Listeners {
    pub fn bind(server: &platform::config::ServerSettings) -> std::io::Result<Self> {
        Ok(Self {
            http: platform::grpc::bind(&server.host, server.port, "server.port")?,
            admin: platform::grpc::bind(&server.host, server.admin_port, "server.admin_port")?,
        })
    }
}

/// Everything `/health/detailed` probes: the shared stores and every service.
fn dependencies(settings: &Settings, redis: RedisClient) -> anyhow::Result<Vec<(String, Probe)>> {
    let pool = platform::database::pool(&settings.database)?;
    platform::database::spawn_pool_gauge(pool.clone(), SERVICE);
    let s3 = platform::s3::client(&settings.s3);
    let services = &settings.services;
    let mut probes = vec![
        ("database".to_owned(), Probe::Postgres(pool)),
        ("redis".to_owned(), Probe::Redis(redis)),
        (
            "s3".to_owned(),
            Probe::S3 {
                client: s3,
                bucket: settings.s3.bucket.clone(),
            },
        ),
    ];
    for (name, url, key) in [
        ("user-service", &services.user, "services.user"),
        ("video-service", &services.video, "services.video"),
        (
            "engagement-service",
            &services.engagement,
            "services.engagement",
        ),
        ("payments-service", &services.payments, "services.payments"),
    ] {
        probes.push((
            name.to_owned(),
            Probe::Grpc(platform::grpc::raw_channel(url, key)?),
        ));
    }
    Ok(probes)
}

/// Serves the REST API on `listeners.http` and the admin routes on `listeners.admin` until
/// `shutdown` resolves; then readiness turns 503, the API stops accepting, in-flight
/// requests get the grace period to finish, and the function returns.
pub async fn run(
    settings: Settings,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    telemetry::metrics::record_build_info(SERVICE);
    // From 0, so the first limited request shows in rate() (the auth routes are the ones
    // attacks hit; other routes appear when first limited).
    for endpoint in ["/api/v1/auth/login", "/api/v1/auth/register"] {
        metrics::counter!(telemetry::metrics::RATE_LIMIT_HITS_TOTAL, "endpoint" => endpoint)
            .increment(0);
    }
    let lifecycle = Lifecycle::new();
    let redis = platform::redis::client(&settings.redis)?;
    platform::redis::spawn_connection_gauge(redis.clone(), SERVICE);
    let keys = KeySpace::new(&settings.redis.key_prefix, "gw:");
    edge::spawn_activity_gauges(
        redis.clone(),
        keys.clone(),
        Duration::from_secs(settings.activity.refresh_secs),
    );
    let edge = web::Data::new(edge::Edge::new(
        &settings.auth,
        redis.clone(),
        keys,
        settings.rate_limit.clone(),
        settings.http.trusted_proxy_hops,
    ));
    let health = HealthState {
        service: SERVICE,
        lifecycle: lifecycle.clone(),
        // The gateway is ready when it runs: a slow or failed service shows in
        // /health/detailed and in its own readiness, and must not take every gateway
        // replica out of the load balancer with it.
        readiness: Checks::default(),
        detailed: Checks::new(dependencies(&settings, redis)?),
        public_report: ReportCache::default(),
    };
    let identity = IdentityKey::new(&settings.auth.internal(), SERVICE);
    let clients = web::Data::new(Clients::new(
        &settings.services,
        &identity,
        &settings.grpc_client,
    )?);
    let request_telemetry = RequestTelemetry::new(&settings.telemetry);
    let uploads = web::Data::new(settings.uploads.clone());
    let video_cache = web::Data::new(cache::VideoCache::new(&settings.cache));
    let in_flight = web::Data::new(shed::InFlight::new(settings.http.max_in_flight));
    let viewer_cookies = web::Data::new(routes::ViewerCookies::new(
        secrecy::ExposeSecret::expose_secret(&settings.auth.jwt_secret).as_bytes(),
    ));
    let health_data = web::Data::new(health.clone());
    let max_body = settings.http.max_body_bytes;
    let admin = AdminServer::start(listeners.admin, health, None, settings.server.profiling)?;

    let server = HttpServer::new(move || {
        App::new()
            // Innermost: after a write, forget the cached answers it may have changed.
            .wrap(from_fn(cache::invalidate))
            // Inside telemetry: who is calling, and the rate limit (its 429s are measured).
            .wrap(from_fn(edge::guard))
            // Before anything costs a Redis call: shed what is over the in-flight limit.
            .wrap(from_fn(shed::limit))
            // Outside it, so it sees every request, errors and unmatched routes included.
            .wrap(request_telemetry.clone())
            // Outermost: everything inside sees the path's one canonical spelling.
            .wrap(from_fn(canonical::canonicalize))
            .app_data(edge.clone())
            .app_data(clients.clone())
            .app_data(uploads.clone())
            .app_data(video_cache.clone())
            .app_data(viewer_cookies.clone())
            .app_data(in_flight.clone())
            .app_data(health_data.clone())
            .app_data(error::extractors::json_config(max_body))
            .app_data(error::extractors::path_config())
            .app_data(error::extractors::query_config())
            // The detailed report (error text, timings) is for the admin port only.
            .configure(public_health_routes)
            .configure(|cfg| routes::configure(cfg, max_body))
            .default_service(web::to(routes::not_found))
    })
    .client_request_timeout(Duration::from_millis(
        settings.http.client_request_timeout_ms,
    ))
    .max_connections(settings.http.max_connections)
    .listen(listeners.http)?
    .workers(settings.http.workers)
    .disable_signals()
    .shutdown_timeout(settings.server.shutdown_grace_secs)
    .run();
    let handle = server.handle();
    let mut serving = tokio::spawn(server);
    lifecycle.mark_ready();
    tracing::info!("gateway ready");

    tokio::select! {
        () = shutdown => {}
        finished = &mut serving => {
            admin.stop().await;
            finished??;
            return Ok(());
        }
    }
    tracing::info!(
        grace_secs = settings.server.shutdown_grace_secs,
        "shutting down: draining in-flight requests"
    );
    lifecycle.begin_shutdown();
    // Graceful: stop accepting, let in-flight requests finish within the grace period.
    handle.stop(true).await;
    serving.await??;
    admin.stop().await;
    Ok(())
}
