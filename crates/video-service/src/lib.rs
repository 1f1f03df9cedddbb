//! video-service: video metadata (schema `videos`) and the bucket holding the files; asks
//! engagement-service for counts.

mod domain;
mod grpc;
mod store;

use platform::config::{GrpcClientSettings, InternalAuthSettings, S3Settings};
use platform::health::Probe;
use platform::service::{Parts, Shared};
use proto::video::v1::video_service_server::VideoServiceServer;
use serde::Deserialize;

/// Where engagement-service listens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngagementSettings {
    /// gRPC URL, e.g. `http://engagement-service:50053`.
    pub url: String,
}

platform::grpc_service! {
    pub struct Service: "video-service", schema "videos", build build,
    defaults include_str!("../config/default.toml"),
    settings {
        s3: S3Settings,
        engagement: EngagementSettings,
        grpc_client: GrpcClientSettings,
        auth: InternalAuthSettings,
    },
    migrations [(1, "videos", include_str!("../migrations/0001_videos.sql"))]
}

async fn build(settings: &Settings, shared: &Shared) -> anyhow::Result<Parts> {
    settings.grpc_client.validate()?;
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
    let max = shared.max_message_bytes();
    Ok(
        Parts::grpc(VideoServiceServer::new(api).max_decoding_message_size(max))
            .with_dependency(
                "s3",
                Probe::S3 {
                    client: s3,
                    bucket: settings.s3.bucket.clone(),
                },
            )
            .with_dependency("engagement-service", Probe::Grpc(engagement_health)),
    )
}
