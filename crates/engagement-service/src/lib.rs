//! engagement-service: views, likes and the counters behind them (schema `engagement`).

mod grpc;
mod store;

use std::future::Future;

use platform::config::{ConfigError, Sources};
use platform::database::{Db, Migration};
use platform::grpc::Listeners;
use platform::service::{DatabaseServiceSettings, ServiceSpec};
use proto::engagement::v1::engagement_service_server::EngagementServiceServer;
use tonic::service::Routes;

pub const SERVICE: &str = "engagement-service";
pub const SCHEMA: &str = "engagement";

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "video_stats",
    sql: include_str!("../migrations/0001_video_stats.sql"),
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
    let api = grpc::EngagementApi::new(store::Store::new(Db::new(pool.clone())));
    let spec = ServiceSpec::new(SERVICE, SCHEMA, MIGRATIONS, pool, &settings);
    let routes = Routes::new(
        EngagementServiceServer::new(api)
            .max_decoding_message_size(settings.server.grpc_max_message_bytes),
    );
    platform::service::run(spec, listeners, routes, shutdown).await
}
