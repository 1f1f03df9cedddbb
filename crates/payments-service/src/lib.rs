//! payments-service: subscription plans, ad revenue and creator payouts (schema `payments`).

mod grpc;
mod store;

use std::future::Future;

use platform::config::{ConfigError, DatabaseSettings, ServerSettings, Sources};
use platform::database::Migration;
use platform::grpc::Listeners;
use platform::service::ServiceSpec;
use proto::payments::v1::payments_service_server::PaymentsServiceServer;
use serde::Deserialize;
use telemetry::TelemetrySettings;
use tonic::service::Routes;

pub const SERVICE: &str = "payments-service";
pub const SCHEMA: &str = "payments";

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "plans",
    sql: include_str!("../migrations/0001_plans.sql"),
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
    let api = grpc::PaymentsApi::new(store::Store::new(pool.clone()));
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
        Routes::new(PaymentsServiceServer::new(api)),
        shutdown,
    )
    .await
}
