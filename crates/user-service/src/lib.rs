//! user-service: accounts (schema `users`).

pub mod domain;
mod grpc;
mod store;

use std::future::Future;

use platform::config::{ConfigError, Sources};
use platform::database::{Db, Migration};
use platform::grpc::Listeners;
use platform::service::{DatabaseServiceSettings, ServiceSpec};
use proto::user::v1::user_service_server::UserServiceServer;
use tonic::service::Routes;

pub const SERVICE: &str = "user-service";
pub const SCHEMA: &str = "users";

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "users",
    sql: include_str!("../migrations/0001_users.sql"),
}];

pub type Settings = DatabaseServiceSettings;

pub fn load_settings(sources: &Sources) -> Result<Settings, ConfigError> {
    platform::service::load_settings(include_str!("../config/default.toml"), sources)
}

/// Runs the service on `listeners` until `shutdown` resolves, then drains and returns.
pub async fn run(
    settings: Settings,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let pool = platform::database::pool(&settings.database)?;
    let api = grpc::UserApi::new(store::Store::new(Db::new(pool.clone())));
    let spec = ServiceSpec::new(SERVICE, SCHEMA, MIGRATIONS, pool, &settings.server);
    let routes = Routes::new(UserServiceServer::new(api));
    platform::service::run(spec, listeners, routes, shutdown).await
}
