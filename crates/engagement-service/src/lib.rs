//! engagement-service: views, likes and the counters behind them (schema `engagement`).

mod grpc;
mod store;

use platform::config::InternalAuthSettings;
use platform::service::{Parts, Shared};
use proto::engagement::v1::engagement_service_server::EngagementServiceServer as Server;

platform::grpc_service! {
    pub struct Service: "engagement-service", schema "engagement", build build,
    defaults include_str!("../config/default.toml"),
    settings { auth: InternalAuthSettings },
    migrations [(1, "video_stats", include_str!("../migrations/0001_video_stats.sql"))]
}

async fn build(_: &Settings, shared: &Shared) -> anyhow::Result<Parts> {
    let api = grpc::EngagementApi::new(store::Store(shared.db.clone()));
    Ok(Parts::grpc(
        Server::new(api).max_decoding_message_size(shared.max_message_bytes()),
    ))
}
