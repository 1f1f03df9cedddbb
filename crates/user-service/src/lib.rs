//! user-service: accounts, authentication and follows (schema `users`), and the login
//! protection kept in Redis (keys `user:`).

mod crypto;
pub mod domain;
mod grpc;
mod security;
mod store;

use std::future::Future;
use std::time::Duration;

use platform::config::{
    AuthSettings, ConfigError, DatabaseSettings, RedisSettings, ServerSettings, Sources,
};
use platform::database::{Db, Migration};
use platform::grpc::Listeners;
use platform::health::Probe;
use platform::redis::KeySpace;
use platform::service::ServiceSpec;
use proto::user::v1::user_service_server::UserServiceServer;
use serde::Deserialize;
use telemetry::TelemetrySettings;
use tonic::service::Routes;

pub const SERVICE: &str = "user-service";
pub const SCHEMA: &str = "users";

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "users",
        sql: include_str!("../migrations/0001_users.sql"),
    },
    Migration {
        version: 2,
        name: "auth_and_follows",
        sql: include_str!("../migrations/0002_auth_and_follows.sql"),
    },
    Migration {
        version: 3,
        name: "session_lifetime",
        sql: include_str!("../migrations/0003_session_lifetime.sql"),
    },
];

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub auth: AuthSettings,
    pub telemetry: TelemetrySettings,
}

platform::process_settings!(Settings);

pub fn load_settings(sources: &Sources) -> Result<Settings, ConfigError> {
    platform::service::load_settings(include_str!("../config/default.toml"), sources)
}

/// Runs the service on `listeners` until `shutdown` resolves, then drains and returns.
pub async fn run(
    settings: Settings,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    security::register_series();
    let pool = platform::database::pool(&settings.database)?;
    let redis = platform::redis::client(&settings.redis)?;
    platform::redis::spawn_connection_gauge(redis.clone(), SERVICE);
    let guard = security::LoginGuard::new(
        redis.clone(),
        KeySpace::new(&settings.redis.key_prefix, "user:"),
        &settings.auth,
    );
    let hasher = crypto::Hasher::new(
        settings.auth.max_concurrent_hashes,
        Duration::from_millis(settings.auth.hash_queue_timeout_ms),
    );
    let api = grpc::UserApi::new(
        store::Store::new(Db::new(pool.clone())),
        guard,
        hasher,
        settings.auth.clone(),
    );
    let spec = ServiceSpec::new(SERVICE, SCHEMA, MIGRATIONS, pool, &settings)
        .with_dependency("redis", Probe::Redis(redis));
    let routes = Routes::new(
        UserServiceServer::new(api)
            .max_decoding_message_size(settings.server.grpc_max_message_bytes),
    );
    platform::service::run(spec, listeners, routes, shutdown).await
}
