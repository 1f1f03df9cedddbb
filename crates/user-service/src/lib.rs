//! user-service: accounts (schema `users`).

pub mod domain;
mod grpc;
mod store;

use std::future::Future;

use platform::config::{ConfigError, DatabaseSettings, ServerSettings, Sources};
use platform::database::Migration;
use platform::grpc::Listeners;
use platform::service::ServiceSpec;
use proto::user::v1::user_service_server::UserServiceServer;
use serde::Deserialize;
use telemetry::TelemetrySettings;
use tonic::service::Routes;

pub const SERVICE: &str = "user-service";
pub const SCHEMA: &str = "users";

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "users",
    sql: include_str!("../migrations/0001_users.sql"),
}];

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub telemetry: TelemetrySettings,
}

impl Settings {
    pub fn load() -> Result<Self, ConfigError> {
        Self::load_from(&Sources::from_process())
    }

    pub fn load_from(sources: &Sources) -> Result<Self, ConfigError> {
        platform::config::load(
            &[
                platform::config::SHARED_DEFAULTS,
                include_str!("../config/default.toml"),
            ],
            sources,
        )
    }
}

/// Runs the service on `listeners` until `shutdown` resolves, then drains and returns.
pub async fn run(
    settings: Settings,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let pool = platform::database::pool(&settings.database)?;
    let api = grpc::UserApi::new(store::Store::new(pool.clone()));
    let spec = ServiceSpec {
        name: SERVICE,
        schema: SCHEMA,
        migrations: MIGRATIONS,
        pool,
        other_dependencies: Vec::new(),
        shutdown_grace: settings.server.shutdown_grace(),
    };
    platform::service::run(
        spec,
        listeners,
        Routes::new(UserServiceServer::new(api)),
        shutdown,
    )
    .await
}
