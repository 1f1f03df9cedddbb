//! engagement-service: views, likes and the counters behind them (schema `engagement`).

mod grpc;
mod store;

use std::future::Future;

use platform::config::{ConfigError, DatabaseSettings, ServerSettings, Sources};
use platform::database::Migration;
use platform::grpc::Listeners;
use platform::service::ServiceSpec;
use proto::engagement::v1::engagement_service_server::EngagementServiceServer;
use serde::Deserialize;
use telemetry::TelemetrySettings;
use tonic::service::Routes;

pub const SERVICE: &str = "engagement-service";
pub const SCHEMA: &str = "engagement";

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "video_stats",
    sql: include_str!("../migrations/0001_video_stats.sql"),
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
    let api = grpc::EngagementApi::new(store::Store::new(pool.clone()));
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
        Routes::new(EngagementServiceServer::new(api)),
        shutdown,
    )
    .await
}
