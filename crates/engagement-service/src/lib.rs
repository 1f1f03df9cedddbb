//! engagement-service: views, likes and the counters behind them (schema `engagement`).

mod grpc;
mod store;

use platform::database::Migration;
use platform::service::{DatabaseServiceSettings, Parts, Shared};
use proto::engagement::v1::engagement_service_server::EngagementServiceServer;
use tonic::service::Routes;

/// engagement-service, as the platform runs it.
pub struct Service;

impl platform::service::Service for Service {
    const NAME: &'static str = "engagement-service";
    const CRATE: &'static str = env!("CARGO_CRATE_NAME");
    const SCHEMA: &'static str = "engagement";
    const MIGRATIONS: &'static [Migration] = &[Migration {
        version: 1,
        name: "video_stats",
        sql: include_str!("../migrations/0001_video_stats.sql"),
    }];
    const DEFAULTS: &'static str = include_str!("../config/default.toml");
    type Settings = DatabaseServiceSettings;

    async fn build(_settings: &Self::Settings, shared: &Shared) -> anyhow::Result<Parts> {
        let api = grpc::EngagementApi::new(store::Store(shared.db.clone()));
        Ok(Parts::new(Routes::new(
            EngagementServiceServer::new(api)
                .max_decoding_message_size(shared.server.grpc_max_message_bytes),
        )))
    }
}
