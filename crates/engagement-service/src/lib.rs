//! engagement-service: views, likes, comments, posts, the home feed and trending, and the
//! counters behind them (schema `engagement`, Redis for the view buffer and trending).
//! Asks user-service for authors and follows, video-service for videos, one batched call
//! per page.

mod app;
mod counters;
mod domain;
mod error;
mod grpc;
mod peers;
mod store;

use std::time::{Duration, Instant};

use platform::config::{GrpcClientSettings, InternalAuthSettings, RedisSettings};
use platform::health::Probe;
use platform::redis::KeySpace;
use platform::service::{Parts, Shared};
use platform::worker::Worker;
use proto::engagement::v1::engagement_service_server::EngagementServiceServer as Server;
use secrecy::ExposeSecret;
use serde::Deserialize;
use telemetry::metrics as m;

/// Where a service this one calls listens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerSettings {
    /// gRPC URL, e.g. `http://user-service:50051`.
    pub url: String,
}

/// Counting views.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewSettings {
    /// A viewer's views of one video count once per window, in seconds.
    pub window_secs: u64,
    /// A view counts after this many seconds of watching, or half of a shorter video.
    pub min_watch_seconds: f64,
    /// How often counted views move from Redis to Postgres, in milliseconds: the most a
    /// Redis restart can lose.
    pub flush_interval_ms: u64,
    /// Anonymous viewers (viewer cookies) counted per client address per video per window.
    pub max_anonymous_per_address: u32,
    /// How long a video's facts are remembered for counting its views, in milliseconds.
    pub video_cache_ttl_ms: u64,
}

/// The trending ranking (formula in `domain::hour_weight`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrendingSettings {
    pub half_life_secs: u64,
    pub window_hours: u32,
    pub like_weight: f64,
    pub cache_secs: u64,
}

/// `content_performance_score`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreSettings {
    pub interval_secs: u64,
}

platform::grpc_service! {
    pub struct Service: "engagement-service", schema "engagement", build build,
    defaults include_str!("../config/default.toml"),
    settings {
        redis: RedisSettings,
        users: PeerSettings,
        videos: PeerSettings,
        grpc_client: GrpcClientSettings,
        views: ViewSettings,
        trending: TrendingSettings,
        scores: ScoreSettings,
        auth: InternalAuthSettings,
    },
    migrations [
        (1, "video_stats", include_str!("../migrations/0001_video_stats.sql")),
        (2, "engagement", include_str!("../migrations/0002_engagement.sql")),
    ]
}

/// The counters exist from the start at 0, so a rate over them (and the LowVideoViews
/// alert) sees a real zero rather than no series.
fn register_counters() {
    metrics::counter!(m::VIDEO_VIEWS_TOTAL).increment(0);
    for reason in ["duplicate", "too_short", "address_limit"] {
        metrics::counter!(m::VIDEO_VIEWS_REJECTED_TOTAL, "reason" => reason).increment(0);
    }
    metrics::counter!(m::POST_LIKES_TOTAL).increment(0);
    for target in ["video", "post", "comment"] {
        metrics::counter!(m::LIKES_TOTAL, "target_type" => target).increment(0);
    }
    metrics::counter!(m::COMMENTS_TOTAL).increment(0);
    metrics::counter!(m::POSTS_TOTAL).increment(0);
}

/// A flush that takes longer than this is abandoned (and retried next tick), so the lag
/// gauge keeps moving even when Redis or Postgres hangs.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

async fn build(settings: &Settings, shared: &Shared) -> anyhow::Result<Parts> {
    settings.grpc_client.validate()?;
    register_counters();
    let redis = platform::redis::client(&settings.redis)?;
    platform::redis::spawn_connection_gauge(redis.clone(), "engagement-service");
    let channel = |url: &str, key: &str| {
        platform::grpc::channel(url, key, &shared.identity, &settings.grpc_client)
    };
    let peers = peers::Peers::new(
        channel(&settings.users.url, "users.url")?,
        channel(&settings.videos.url, "videos.url")?,
    );
    let counters = counters::Counters::new(
        redis.clone(),
        KeySpace::new(&settings.redis.key_prefix, "eng:"),
        settings
            .auth
            .internal_token_secret
            .expose_secret()
            .as_bytes(),
        settings.views.window_secs,
        settings.views.max_anonymous_per_address,
        settings.trending.clone(),
    );
    let app = app::Engagement::new(
        store::Store(shared.db.clone()),
        counters,
        peers,
        settings.views.clone(),
    );

    let flusher = app.clone();
    let flush_every = Duration::from_millis(settings.views.flush_interval_ms.max(100));
    let scorer = app.clone();
    let score_every = Duration::from_secs(settings.scores.interval_secs.max(1));
    let api = grpc::EngagementApi::new(app);
    // user-service and video-service are not readiness dependencies: they depend on this
    // service in turn, and a lookup that fails fails only its own request (503).
    Ok(
        Parts::grpc(Server::new(api).max_decoding_message_size(shared.max_message_bytes()))
            .with_dependency("redis", Probe::Redis(redis))
            .with_worker(Worker::new("view-flush", move |mut draining| async move {
                let mut tick = tokio::time::interval(flush_every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut last_flush = Instant::now();
                loop {
                    let stopping = tokio::select! {
                        () = draining.wait() => true,
                        _ = tick.tick() => false,
                    };
                    // One last flush on the way out: a clean shutdown loses nothing.
                    match tokio::time::timeout(FLUSH_TIMEOUT, flusher.flush_views()).await {
                        Ok(Ok(_)) => last_flush = Instant::now(),
                        Ok(Err(e)) => tracing::warn!(error = %e, "views not flushed; retrying"),
                        Err(_) => tracing::warn!("views not flushed within 30 s; retrying"),
                    }
                    metrics::gauge!(m::VIEW_FLUSH_LAG_SECONDS)
                        .set(last_flush.elapsed().as_secs_f64());
                    if let Some(ratio) = flusher.video_cache_ratio() {
                        metrics::gauge!(m::CACHE_HIT_RATIO, "cache" => "videos").set(ratio);
                    }
                    if let Some(ratio) = flusher.trending_cache.take_ratio() {
                        metrics::gauge!(m::CACHE_HIT_RATIO, "cache" => "trending").set(ratio);
                    }
                    if stopping {
                        return Ok(());
                    }
                }
            }))
            .with_worker(Worker::new(
                "content-scores",
                move |mut draining| async move {
                    let mut tick = tokio::time::interval(score_every);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    let mut since = chrono::Utc::now();
                    loop {
                        tokio::select! {
                            () = draining.wait() => return Ok(()),
                            _ = tick.tick() => {}
                        }
                        let now = chrono::Utc::now();
                        match scorer.score_content(since).await {
                            Ok(()) => since = now,
                            Err(e) => tracing::warn!(error = %e, "content scores not computed"),
                        }
                    }
                },
            )),
    )
}
