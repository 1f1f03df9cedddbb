//! video-service: video metadata (schema `videos`) and the bucket holding the files; asks
//! engagement-service for counts.

mod grpc;
mod store;

use platform::config::{
    ConfigError, DatabaseSettings, GrpcClientSettings, InternalAuthSettings, S3Settings,
    ServerSettings,
};
use platform::database::Migration;
use platform::health::Probe;
use platform::service::{Parts, Shared};
use proto::video::v1::video_service_server::VideoServiceServer;
use serde::Deserialize;
use telemetry::TelemetrySettings;
use tonic::service::Routes;

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
    pub grpc_client: GrpcClientSettings,
    pub auth: InternalAuthSettings,
    pub telemetry: TelemetrySettings,
}

platform::process_settings!(Settings);

/// video-service, as the platform runs it.
pub struct Service;

impl platform::service::Service for Service {
    const NAME: &'static str = "video-service";
    const CRATE: &'static str = env!("CARGO_CRATE_NAME");
    const SCHEMA: &'static str = "videos";
    const MIGRATIONS: &'static [Migration] = &[Migration {
        version: 1,
        name: "videos",
        sql: include_str!("../migrations/0001_videos.sql"),
    }];
    const DEFAULTS: &'static str = include_str!("../config/default.toml");
    type Settings = Settings;

    fn validate(settings: &Settings) -> Result<(), ConfigError> {
        settings.grpc_client.validate()
    }

    async fn build(settings: &Settings, shared: &Shared) -> anyhow::Result<Parts> {
        let s3 = platform::s3::client(&settings.s3);
        let url = &settings.engagement.url;
        let engagement = platform::grpc::channel(
            url,
            "engagement.url",
            &shared.identity,
            &settings.grpc_client,
        )?;
        let engagement_health = platform::grpc::raw_channel(url, "engagement.url")?;

        // The bucket belongs to this service. An unreachable store is not fatal at start: it
        // shows in /health/detailed, and uploads fail until it is back.
        let bucket = settings.s3.bucket.clone();
        let s3_for_bucket = s3.clone();
        tokio::spawn(async move {
            if let Err(error) = platform::s3::ensure_bucket(&s3_for_bucket, &bucket).await {
                tracing::warn!(%bucket, %error, "video bucket not ready");
            }
        });

        let api = grpc::VideoApi::new(store::Store(shared.db.clone()), engagement);
        Ok(Parts::new(Routes::new(
            VideoServiceServer::new(api)
                .max_decoding_message_size(shared.server.grpc_max_message_bytes),
        ))
        .with_dependency(
            "s3",
            Probe::S3 {
                client: s3,
                bucket: settings.s3.bucket.clone(),
            },
        )
        .with_dependency("engagement-service", Probe::Grpc(engagement_health)))
    }
}
