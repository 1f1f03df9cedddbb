//! video-service: video metadata (schema `videos`) and the bucket holding the files; asks
//! engagement-service for counts.

mod grpc;
mod store;

use std::future::Future;

use platform::config::{
    ConfigError, DatabaseSettings, InternalAuthSettings, S3Settings, ServerSettings, Sources,
};
use platform::database::{Db, Migration};
use platform::grpc::Listeners;
use platform::health::Probe;
use platform::service::ServiceSpec;
use proto::video::v1::video_service_server::VideoServiceServer;
use serde::Deserialize;
use telemetry::TelemetrySettings;
use tonic::service::Routes;

pub const SERVICE: &str = "video-service";
pub const SCHEMA: &str = "videos";

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "videos",
    sql: include_str!("../migrations/0001_videos.sql"),
}];

/// Where engagement-service listens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngagementSettings {
    /// gRPC URL, e.g. `http://engagement-service:50053`.
    pub url: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub s3: S3Settings,
    pub engagement: EngagementSettings,
    pub auth: InternalAuthSettings,
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
    let pool = platform::database::pool(&settings.database)?;
    let s3 = platform::s3::client(&settings.s3);
    let spec = ServiceSpec::new(SERVICE, SCHEMA, MIGRATIONS, pool.clone(), &settings);
    let engagement =
        platform::grpc::channel(&settings.engagement.url, "engagement.url", &spec.identity)?;
    let engagement_health =
        platform::grpc::raw_channel(&settings.engagement.url, "engagement.url")?;

    // The bucket belongs to this service. An unreachable store is not fatal at start: it
    // shows in /health/detailed, and uploads fail until it is back.
    let bucket = settings.s3.bucket.clone();
    let s3_for_bucket = s3.clone();
    tokio::spawn(async move {
        if let Err(error) = platform::s3::ensure_bucket(&s3_for_bucket, &bucket).await {
            tracing::warn!(%bucket, %error, "video bucket not ready");
        }
    });

    let api = grpc::VideoApi::new(store::Store::new(Db::new(pool.clone())), engagement);
    let spec = spec
        .with_dependency(
            "s3",
            Probe::S3 {
                client: s3,
                bucket: settings.s3.bucket.clone(),
            },
        )
        .with_dependency("engagement-service", Probe::Grpc(engagement_health));
    platform::service::run(
        spec,
        listeners,
        Routes::new(
            VideoServiceServer::new(api)
                .max_decoding_message_size(settings.server.grpc_max_message_bytes),
        ),
        shutdown,
    )
    .await
}
