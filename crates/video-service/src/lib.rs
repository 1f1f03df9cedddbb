//! video-service: video metadata (schema `videos`) and the bucket holding the files; asks
//! engagement-service for counts.

mod app;
mod counts;
mod domain;
mod error;
mod grpc;
mod objects;
mod processing;
mod store;

use platform::config::{GrpcClientSettings, InternalAuthSettings, S3Settings};
use platform::health::Probe;
use platform::service::{Parts, Shared};
use proto::video::v1::video_service_server::VideoServiceServer;
use serde::Deserialize;

/// Uploads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadSettings {
    /// Largest video accepted, in bytes (413 beyond it, checked against the declared length
    /// and while streaming).
    pub max_size_bytes: u64,
    /// Uploads streamed in or verified at once by this process; more get 503 with
    /// Retry-After. Each holds up to two 8 MiB parts in memory.
    pub max_concurrent: usize,
    /// How long the presigned part URLs of a direct upload work, and how long the upload
    /// may stay incomplete before the sweep aborts it, in seconds.
    pub direct_upload_ttl_secs: u64,
    /// How often the sweep looks for abandoned uploads and unreferenced objects, in seconds.
    pub sweep_interval_secs: u64,
}

/// The processing queue and its workers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessingSettings {
    /// Workers processing videos at once in this process.
    pub workers: usize,
    /// How long a claimed job is held before another worker may take it, in seconds.
    pub lease_secs: i64,
    /// Attempts before a job is dead and its video `failed`.
    pub max_attempts: i32,
    /// How often an idle worker looks for a job, in milliseconds.
    pub poll_interval_ms: u64,
    /// The first retry's delay, doubled per attempt (jittered, at most 5 minutes), in ms.
    pub retry_base_ms: u64,
    /// The `ffprobe` binary.
    pub ffprobe: String,
    /// The `ffmpeg` binary.
    pub ffmpeg: String,
}

/// Links handed to readers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaybackSettings {
    /// How long presigned playback and thumbnail URLs work, in seconds.
    pub url_ttl_secs: u64,
}

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
        uploads: UploadSettings,
        processing: ProcessingSettings,
        playback: PlaybackSettings,
        auth: InternalAuthSettings,
    },
    migrations [
        (1, "videos", include_str!("../migrations/0001_videos.sql")),
        (2, "uploads_and_jobs", include_str!("../migrations/0002_uploads_and_jobs.sql")),
        (3, "pending_uploads", include_str!("../migrations/0003_pending_uploads.sql")),
    ]
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

    let store = store::Store(shared.db.clone());
    let objects = objects::Objects::new(s3.clone(), settings.s3.bucket.clone());
    let videos = app::Videos::new(
        store.clone(),
        objects.clone(),
        counts::Counts::new(engagement),
        settings.uploads.clone(),
        settings.processing.clone(),
        settings.playback.clone(),
    );
    let sweep = videos.clone();
    let every = std::time::Duration::from_secs(settings.uploads.sweep_interval_secs.max(1));
    let api = grpc::VideoApi::new(videos);
    let max = shared.max_message_bytes();
    let mut parts = Parts::grpc(VideoServiceServer::new(api).max_decoding_message_size(max));
    for worker in processing::workers(store, objects, settings.processing.clone()) {
        parts = parts.with_worker(worker);
    }
    parts = parts.with_worker(platform::worker::Worker::new(
        "upload-sweep",
        move |mut draining| async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    () = draining.wait() => return Ok(()),
                    _ = tick.tick() => {}
                }
                if let Err(e) = sweep.sweep().await {
                    tracing::warn!(error = %e, "upload sweep did not finish");
                }
            }
        },
    ));
    Ok(parts
        .with_dependency(
            "s3",
            Probe::S3 {
                client: s3,
                bucket: settings.s3.bucket.clone(),
            },
        )
        .with_dependency("engagement-service", Probe::Grpc(engagement_health)))
}
