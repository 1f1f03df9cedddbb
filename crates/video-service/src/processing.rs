//! The processing worker: claims a queued job under a lease, verifies the stored object
//! against what the upload recorded, probes it with `ffprobe`, draws a thumbnail with
//! `ffmpeg`, and makes the video `ready` — or retries with jittered backoff, or gives up
//! (`failed` with the reason). At-least-once: a job whose worker died is claimed again once
//! its lease runs out; finishing is conditional on still holding the lease, so it takes
//! effect once.

use std::path::Path;
use std::time::{Duration, Instant};

use platform::worker::{Draining, Worker};
use telemetry::events::Category;
use tracing::Instrument;

use crate::ProcessingSettings;
use crate::objects::Objects;
use crate::store::{Job, Probed, Store};

/// Why an attempt did not make the video ready.
#[derive(Debug)]
enum Failure {
    /// Worth another attempt (the store or the database failed).
    Transient(String),
    /// No attempt will do better: the file is not a decodable video, or not what was
    /// uploaded.
    Permanent(String),
}

pub struct Processor {
    store: Store,
    objects: Objects,
    settings: ProcessingSettings,
}

/// `workers` background workers processing the queue, and one refreshing its gauges.
pub fn workers(store: Store, objects: Objects, settings: ProcessingSettings) -> Vec<Worker> {
    let processor = std::sync::Arc::new(Processor {
        store: store.clone(),
        objects,
        settings: settings.clone(),
    });
    let mut workers: Vec<Worker> = (1..=settings.workers)
        .map(|n| {
            let processor = std::sync::Arc::clone(&processor);
            Worker::new(
                format!("video-processing-{n}"),
                move |draining| async move {
                    processor.run(draining).await;
                    Ok(())
                },
            )
        })
        .collect();
    workers.push(Worker::new("video-queue-gauges", move |draining| {
        gauges(store, draining)
    }));
    workers
}

/// Keeps `video_processing_jobs{state}` current.
async fn gauges(store: Store, mut draining: Draining) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            () = draining.wait() => return Ok(()),
            _ = tick.tick() => {}
        }
        match store.queue_depth().await {
            Ok(depth) => {
                for (state, n) in [
                    ("ready", depth.ready),
                    ("leased", depth.leased),
                    ("dead", depth.dead),
                ] {
                    metrics::gauge!(telemetry::metrics::VIDEO_PROCESSING_JOBS, "state" => state)
                        .set(n as f64);
                }
            }
            Err(e) => tracing::warn!(error = %e, "queue depth not read"),
        }
    }
}

impl Processor {
    /// Takes jobs until the process drains; the job in hand is finished first.
    pub async fn run(&self, mut draining: Draining) {
        let poll = Duration::from_millis(self.settings.poll_interval_ms);
        while !draining.is_draining() {
            match self.store.claim_job(self.settings.lease_secs).await {
                Ok(Some(job)) => self.process(job).await,
                Ok(None) => {
                    tokio::select! {
                        () = draining.wait() => {}
                        () = tokio::time::sleep(poll) => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "no job claimed (database)");
                    tokio::select! {
                        () = draining.wait() => {}
                        () = tokio::time::sleep(poll) => {}
                    }
                }
            }
        }
    }

    /// One attempt at one job, in the trace of the upload that queued it.
    pub async fn process(&self, job: Job) {
        let span = tracing::info_span!(
            "process_video",
            otel.kind = "consumer",
            video_id = %job.video_id,
            job_id = %job.id,
            attempt = job.attempt,
        );
        if let Some(traceparent) = &job.traceparent {
            telemetry::continue_trace(&span, traceparent);
        }
        async {
            let started = Instant::now();
            let outcome = self.attempt(&job).await;
            let label = match &outcome {
                Ok(()) => "ready",
                Err(Failure::Transient(_)) if job.attempt < job.max_attempts => "retry",
                Err(_) => "failed",
            };
            metrics::counter!(
                telemetry::metrics::VIDEO_PROCESSING_ATTEMPTS_TOTAL,
                "outcome" => label
            )
            .increment(1);
            metrics::histogram!(
                telemetry::metrics::VIDEO_PROCESSING_DURATION_SECONDS,
                "outcome" => label
            )
            .record(started.elapsed().as_secs_f64());
            if let Err(failure) = outcome {
                let (reason, retry_in) = match failure {
                    Failure::Transient(reason) => (reason, Some(self.backoff(job.attempt))),
                    Failure::Permanent(reason) => (reason, None),
                };
                match self.store.fail_job(&job, &reason, retry_in).await {
                    Ok(true) => {
                        tracing::warn!(video_id = %job.video_id, %reason, "video processing failed");
                        telemetry::business_event!(
                            Category::Content,
                            "video_failed",
                            video_id = %job.video_id,
                            reason = %reason
                        );
                    }
                    Ok(false) => {
                        tracing::info!(video_id = %job.video_id, %reason, "video processing will be retried");
                    }
                    Err(e) => tracing::error!(error = %e, "job outcome not recorded"),
                }
            }
        }
        .instrument(span)
        .await;
    }

    /// Exponential from `retry_base_ms`, capped at 5 minutes, jittered ±50% so retries of
    /// many jobs do not come back together.
    fn backoff(&self, attempt: i32) -> Duration {
        let exponent = u32::try_from(attempt.saturating_sub(1))
            .unwrap_or(0)
            .min(16);
        let base = self
            .settings
            .retry_base_ms
            .saturating_mul(1u64 << exponent)
            .min(300_000);
        let mut byte = [0u8; 1];
        let jitter = if getrandom::fill(&mut byte).is_ok() {
            0.5 + f64::from(byte[0]) / 255.0
        } else {
            1.0
        };
        Duration::from_millis((base as f64 * jitter) as u64)
    }

    async fn attempt(&self, job: &Job) -> Result<(), Failure> {
        let transient = |e: platform::database::DbError| Failure::Transient(e.to_string());
        let video = self
            .store
            .video(job.video_id)
            .await
            .map_err(transient)?
            .ok_or_else(|| Failure::Permanent("the video was deleted".to_owned()))?;
        self.store
            .start_processing(job.video_id)
            .await
            .map_err(transient)?;
        let key = video
            .object_key
            .clone()
            .ok_or_else(|| Failure::Permanent("the video has no stored file".to_owned()))?;
        let dir = tempfile::tempdir().map_err(|e| Failure::Transient(e.to_string()))?;
        let file = dir.path().join("video");
        let (size, sha256) = self
            .objects
            .download(&key, &file)
            .await
            .map_err(Failure::Transient)?;
        let recorded = self
            .store
            .recorded_digest(job.video_id)
            .await
            .map_err(transient)?;
        if size != video.size_bytes || recorded.as_deref() != Some(sha256.as_slice()) {
            return Err(Failure::Permanent(
                "the stored file is not the one that was uploaded".to_owned(),
            ));
        }
        let probe = self.probe(&file).await?;
        let thumbnail = dir.path().join("thumbnail.jpg");
        self.thumbnail(&file, &thumbnail, probe.duration_seconds)
            .await?;
        let thumbnail_key = format!("thumbnails/{}.jpg", job.video_id);
        let bytes = tokio::fs::read(&thumbnail)
            .await
            .map_err(|e| Failure::Transient(e.to_string()))?;
        self.objects
            .put(&thumbnail_key, "image/jpeg", bytes)
            .await
            .map_err(Failure::Transient)?;
        let probed = Probed {
            thumbnail_key,
            ..probe
        };
        if self
            .store
            .finish_job(job, &probed)
            .await
            .map_err(transient)?
        {
            telemetry::business_event!(
                Category::Content,
                "video_ready",
                video_id = %job.video_id,
                duration_seconds = probed.duration_seconds
            );
        }
        Ok(())
    }

    /// How long `ffprobe` or `ffmpeg` may run: a third of the lease, so a hung one is
    /// killed (`kill_on_drop`) and the attempt retried before another worker takes the job.
    fn tool_time_limit(&self) -> Duration {
        Duration::from_secs(
            u64::try_from(self.settings.lease_secs / 3)
                .unwrap_or(1)
                .max(1),
        )
    }

    /// Duration, resolution and codec of the first video stream, from `ffprobe`.
    async fn probe(&self, file: &Path) -> Result<Probed, Failure> {
        let limit = self.tool_time_limit();
        let run = tokio::process::Command::new(&self.settings.ffprobe)
            .args([
                "-v",
                "error",
                "-print_format",
                "json",
                "-show_format",
                "-show_streams",
            ])
            .arg(file)
            .kill_on_drop(true)
            .output()
            .instrument(tracing::info_span!("ffprobe"));
        let output = tokio::time::timeout(limit, run)
            .await
            .map_err(|_| Failure::Transient("ffprobe ran out of time".to_owned()))?
            .map_err(|e| Failure::Transient(format!("cannot run ffprobe: {e}")))?;
        if !output.status.success() {
            return Err(Failure::Permanent(
                "the file could not be decoded as a video".to_owned(),
            ));
        }
        parse_probe(&output.stdout)
            .ok_or_else(|| Failure::Permanent("the file has no decodable video stream".to_owned()))
    }

    /// A 320 px wide JPEG of a frame a second in (or the first, for shorter videos).
    async fn thumbnail(&self, file: &Path, out: &Path, duration: u32) -> Result<(), Failure> {
        let at = if duration >= 2 { "1" } else { "0" };
        let limit = self.tool_time_limit();
        let run = tokio::process::Command::new(&self.settings.ffmpeg)
            .args(["-v", "error", "-y", "-ss", at, "-i"])
            .arg(file)
            .args(["-frames:v", "1", "-vf", "scale=320:-2"])
            .arg(out)
            .kill_on_drop(true)
            .status()
            .instrument(tracing::info_span!("ffmpeg_thumbnail"));
        let status = tokio::time::timeout(limit, run)
            .await
            .map_err(|_| Failure::Transient("ffmpeg ran out of time".to_owned()))?
            .map_err(|e| Failure::Transient(format!("cannot run ffmpeg: {e}")))?;
        if status.success() && out.exists() {
            Ok(())
        } else {
            Err(Failure::Permanent(
                "no frame could be decoded for a thumbnail".to_owned(),
            ))
        }
    }
}

/// What `ffprobe -print_format json -show_format -show_streams` says of the first video
/// stream; `None` when there is none.
fn parse_probe(json: &[u8]) -> Option<Probed> {
    let value: serde_json::Value = serde_json::from_slice(json).ok()?;
    let stream = value["streams"]
        .as_array()?
        .iter()
        .find(|s| s["codec_type"] == "video")?;
    let number = |v: &serde_json::Value| -> Option<f64> {
        v.as_f64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    };
    let duration = number(&value["format"]["duration"])
        .or_else(|| number(&stream["duration"]))
        .unwrap_or(0.0);
    Some(Probed {
        duration_seconds: duration.round().max(0.0) as u32,
        width: u32::try_from(stream["width"].as_u64()?).ok()?,
        height: u32::try_from(stream["height"].as_u64()?).ok()?,
        codec: stream["codec_name"].as_str()?.to_owned(),
        thumbnail_key: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_video_stream_of_a_probe_is_read() {
        let json = br#"{"streams":[
            {"codec_type":"audio","codec_name":"aac"},
            {"codec_type":"video","codec_name":"h264","width":640,"height":360,"duration":"2.040"}
        ],"format":{"duration":"2.040000"}}"#;
        let probed = parse_probe(json).expect("a video stream");
        assert_eq!(
            (probed.duration_seconds, probed.width, probed.height),
            (2, 640, 360)
        );
        assert_eq!(probed.codec, "h264");
        assert!(parse_probe(br#"{"streams":[{"codec_type":"audio"}],"format":{}}"#).is_none());
        assert!(parse_probe(b"not json").is_none());
    }
}

/// The queue and the worker against a real database and object store, without gRPC: a
/// job whose worker died is taken again after its lease and takes effect once; a job that
/// keeps failing ends dead and its video `failed`.
#[cfg(test)]
mod queue_tests {
    use std::time::Duration;

    use futures::stream;
    use platform::config::DatabaseSettings;
    use platform::service::Service as _;
    use testkit::{S3Server, TestDatabase};
    use uuid::Uuid;

    use super::*;
    use crate::app::{UploadRequest, Videos};
    use crate::domain::{Description, Title, Visibility};
    use crate::{PlaybackSettings, UploadSettings};

    struct Fixture {
        store: Store,
        objects: Objects,
        videos: Videos,
        _db: TestDatabase,
        _s3: S3Server,
    }

    fn settings(max_attempts: i32) -> ProcessingSettings {
        ProcessingSettings {
            workers: 1,
            lease_secs: 300,
            max_attempts,
            poll_interval_ms: 50,
            retry_base_ms: 1,
            ffprobe: "ffprobe".into(),
            ffmpeg: "ffmpeg".into(),
        }
    }

    async fn fixture(max_attempts: i32) -> Fixture {
        let db = TestDatabase::create().await;
        let pool = platform::database::pool(&DatabaseSettings {
            url: db.url().to_owned().into(),
            max_connections: 4,
            acquire_timeout_ms: 3_000,
            connect_timeout_ms: 3_000,
            statement_timeout_ms: 10_000,
        })
        .expect("pool");
        platform::database::migrate(&pool, crate::Service::SCHEMA, crate::Service::MIGRATIONS)
            .await
            .expect("migrations");
        let s3 = S3Server::start().await;
        let bucket = format!("sf-test-{}", testkit::unique_suffix());
        let client = platform::s3::client(&s3.settings(&bucket));
        platform::s3::ensure_bucket(&client, &bucket)
            .await
            .expect("bucket");
        let store = Store(platform::database::Db::new(pool));
        let objects = Objects::new(client, bucket);
        let nowhere = platform::grpc::channel(
            "http://127.0.0.1:1",
            "engagement.url",
            &platform::identity::IdentityKey::new(
                &platform::config::InternalAuthSettings {
                    internal_token_secret: "a-test-internal-secret-of-32-bytes-plus"
                        .to_owned()
                        .into(),
                    allow_development_key: false,
                },
                "video-service",
            ),
            &platform::config::GrpcClientSettings {
                timeout_ms: 1_000,
                timeouts: Vec::new(),
                breaker: platform::breaker::BreakerSettings::default(),
            },
        )
        .expect("channel");
        let videos = Videos::new(
            store.clone(),
            objects.clone(),
            crate::counts::Counts::new(nowhere),
            UploadSettings {
                max_size_bytes: 10 * 1024 * 1024,
                max_concurrent: 2,
                direct_upload_ttl_secs: 60,
                sweep_interval_secs: 60,
            },
            settings(max_attempts),
            PlaybackSettings { url_ttl_secs: 60 },
        );
        Fixture {
            store,
            objects,
            videos,
            _db: db,
            _s3: s3,
        }
    }

    /// Uploads one second of ffmpeg's test pattern; the video's id.
    async fn upload(f: &Fixture) -> Uuid {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("v.mp4");
        let made = std::process::Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc=duration=1:size=160x120:rate=10",
            ])
            .args(["-pix_fmt", "yuv420p", "-c:v", "mpeg4"])
            .arg(&path)
            .status()
            .expect("ffmpeg is needed; scripts/install-test-deps.sh installs it");
        assert!(made.success());
        let bytes = bytes::Bytes::from(std::fs::read(&path).expect("sample"));
        let uploaded = f
            .videos
            .upload(
                Uuid::new_v4(),
                UploadRequest {
                    title: Title::parse("Queued").expect("title"),
                    description: Description::default(),
                    visibility: Visibility::Public,
                    declared_size: bytes.len() as u64,
                },
                stream::iter([Ok(bytes)]),
            )
            .await
            .expect("uploaded");
        uploaded.video_id
    }

    async fn job_state(f: &Fixture, video: Uuid) -> (String, i32) {
        let row = f
            .store
            .0
            .query_one(
                "SELECT",
                "videos.jobs",
                "SELECT state, attempts FROM videos.jobs WHERE video_id = $1",
                &[&video],
            )
            .await
            .expect("job");
        (row.get(0), row.get(1))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_whose_worker_died_is_claimed_again_after_its_lease_and_takes_effect_once() {
        let f = fixture(5).await;
        let video = upload(&f).await;
        // A worker claims it under a one-second lease, then dies.
        let dead = f.store.claim_job(1).await.expect("claim").expect("a job");
        assert_eq!((dead.video_id, dead.attempt), (video, 1));
        assert!(
            f.store.claim_job(300).await.expect("claim").is_none(),
            "nobody else takes a leased job"
        );
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        let again = f
            .store
            .claim_job(300)
            .await
            .expect("claim")
            .expect("taken again");
        assert_eq!((again.id, again.attempt), (dead.id, 2));

        let processor = Processor {
            store: f.store.clone(),
            objects: f.objects.clone(),
            settings: settings(5),
        };
        processor.process(again).await;
        let ready = f.store.video(video).await.expect("video").expect("row");
        assert_eq!(ready.status, crate::domain::VideoStatus::Ready);
        assert_eq!((ready.width, ready.height), (Some(160), Some(120)));
        assert_eq!(job_state(&f, video).await, ("done".to_owned(), 2));

        // The dead worker waking up changes nothing.
        let late = Probed {
            duration_seconds: 99,
            width: 1,
            height: 1,
            codec: "late".into(),
            thumbnail_key: "late".into(),
        };
        assert!(!f.store.finish_job(&dead, &late).await.expect("finish"));
        assert!(!f.store.fail_job(&dead, "late", None).await.expect("fail"));
        let still = f.store.video(video).await.expect("video").expect("row");
        assert_eq!(still.codec.as_deref(), Some("mpeg4"));
        assert_eq!(still.status, crate::domain::VideoStatus::Ready);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_that_keeps_failing_ends_dead_after_its_attempts_and_the_video_failed() {
        let f = fixture(3).await;
        let video = upload(&f).await;
        // The stored file disappears: every attempt fails to fetch it.
        let key = f
            .store
            .video(video)
            .await
            .expect("video")
            .and_then(|v| v.object_key)
            .expect("key");
        f.objects.delete(&key).await.expect("deleted");
        let processor = Processor {
            store: f.store.clone(),
            objects: f.objects.clone(),
            settings: settings(3),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while job_state(&f, video).await.0 != "dead" {
            assert!(std::time::Instant::now() < deadline, "the job never died");
            if let Some(job) = f.store.claim_job(300).await.expect("claim") {
                processor.process(job).await;
            } else {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        assert_eq!(job_state(&f, video).await, ("dead".to_owned(), 3));
        let failed = f.store.video(video).await.expect("video").expect("row");
        assert_eq!(failed.status, crate::domain::VideoStatus::Failed);
        assert!(failed.failure_reason.is_some_and(|r| !r.is_empty()));
        let depth = f.store.queue_depth().await.expect("depth");
        assert_eq!((depth.ready, depth.leased, depth.dead), (0, 0, 1));
    }
}
