//! SQL for schema `videos`: the videos and their processing queue.

use chrono::{DateTime, Utc};
use platform::database::{Db, DbError, db_span};
use platform::pagination::{Cursor, PageSize, split_page};
use tokio_postgres::Row;
use tracing::Instrument;
use uuid::Uuid;

use crate::domain::{VideoStatus, Visibility};

#[derive(Debug, Clone, PartialEq)]
pub struct Video {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub title: String,
    pub description: String,
    pub duration_seconds: u32,
    pub status: VideoStatus,
    pub visibility: Visibility,
    pub failure_reason: Option<String>,
    pub size_bytes: u64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub codec: Option<String>,
    pub object_key: Option<String>,
    pub thumbnail_key: Option<String>,
    pub tags: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// The columns of a [`Video`], as a literal so every query built on it is a constant.
macro_rules! columns {
    () => {
        "id, owner_id, title, description, duration_seconds, status, visibility, failure_reason,
         size_bytes, width, height, codec, object_key, thumbnail_key, tags, created_at"
    };
}

fn pending(row: &Row) -> PendingUpload {
    PendingUpload {
        video_id: row.get(0),
        owner_id: row.get(1),
        upload_id: row.get(2),
        object_key: row.get(3),
        title: row.get(4),
        description: row.get(5),
        visibility: Visibility::parse(row.get(6)).unwrap_or(Visibility::Private),
        declared_size: u64::try_from(row.get::<_, i64>(7)).unwrap_or(0),
    }
}

fn positive(value: Option<i32>) -> Option<u32> {
    value.and_then(|v| u32::try_from(v).ok())
}

fn video(row: &Row) -> Video {
    Video {
        id: row.get("id"),
        owner_id: row.get("owner_id"),
        title: row.get("title"),
        description: row.get("description"),
        duration_seconds: u32::try_from(row.get::<_, i32>("duration_seconds")).unwrap_or(0),
        // The schema's CHECK constraints admit only the values `parse` knows.
        status: VideoStatus::parse(row.get("status")).unwrap_or(VideoStatus::Failed),
        visibility: Visibility::parse(row.get("visibility")).unwrap_or(Visibility::Private),
        failure_reason: row.get("failure_reason"),
        size_bytes: u64::try_from(row.get::<_, i64>("size_bytes")).unwrap_or(0),
        width: positive(row.get("width")),
        height: positive(row.get("height")),
        codec: row.get("codec"),
        object_key: row.get("object_key"),
        thumbnail_key: row.get("thumbnail_key"),
        tags: row.get("tags"),
        created_at: row.get("created_at"),
    }
}

/// A video whose object is complete, as it is recorded.
#[derive(Debug, Clone)]
pub struct NewVideo<'a> {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub title: &'a str,
    pub description: &'a str,
    pub visibility: Visibility,
    pub object_key: &'a str,
    pub content_type: &'a str,
    pub size_bytes: u64,
    pub sha256: &'a [u8],
}

/// A direct upload that has begun but not completed.
#[derive(Debug, Clone)]
pub struct PendingUpload {
    pub video_id: Uuid,
    pub owner_id: Uuid,
    pub upload_id: String,
    pub object_key: String,
    pub title: String,
    pub description: String,
    pub visibility: Visibility,
    pub declared_size: u64,
}

/// A processing job, as a worker holds it.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: Uuid,
    pub video_id: Uuid,
    /// This claim's attempt, from 1.
    pub attempt: i32,
    pub max_attempts: i32,
    pub traceparent: Option<String>,
}

/// What the probe of a video found.
#[derive(Debug, Clone, PartialEq)]
pub struct Probed {
    pub duration_seconds: u32,
    pub width: u32,
    pub height: u32,
    pub codec: String,
    pub thumbnail_key: String,
}

/// Jobs by state, for the queue depth gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    pub ready: i64,
    pub leased: i64,
    pub dead: i64,
}

/// The `videos` schema.
#[derive(Clone)]
pub struct Store(pub Db);

const FIRST_PUBLIC_PAGE: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM videos.videos WHERE status = 'ready' AND visibility = 'public'
     ORDER BY created_at DESC, id DESC LIMIT $1"
);
const NEXT_PUBLIC_PAGE: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM videos.videos WHERE status = 'ready' AND visibility = 'public'
     AND (created_at, id) < ($1, $2)
     ORDER BY created_at DESC, id DESC LIMIT $3"
);
/// `$2`: whether the caller is the owner (then every video, else the ready public ones).
const FIRST_OWNER_PAGE: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM videos.videos WHERE owner_id = $1
     AND ($2 OR (status = 'ready' AND visibility = 'public'))
     ORDER BY created_at DESC, id DESC LIMIT $3"
);
const NEXT_OWNER_PAGE: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM videos.videos WHERE owner_id = $1
     AND ($2 OR (status = 'ready' AND visibility = 'public'))
     AND (created_at, id) < ($3, $4)
     ORDER BY created_at DESC, id DESC LIMIT $5"
);

fn cursor_of(v: &Video) -> Cursor {
    Cursor {
        created_at: v.created_at,
        id: v.id,
    }
}

impl Store {
    pub async fn video(&self, id: Uuid) -> Result<Option<Video>, DbError> {
        let sql = concat!("SELECT ", columns!(), " FROM videos.videos WHERE id = $1");
        let row = self
            .0
            .query_opt("SELECT", "videos.videos", sql, &[&id])
            .await?;
        Ok(row.as_ref().map(video))
    }

    /// One page of ready public videos, newest first, after `cursor`; and the cursor of the
    /// next page when there is one.
    pub async fn public_page(
        &self,
        size: PageSize,
        cursor: Option<Cursor>,
    ) -> Result<(Vec<Video>, Option<Cursor>), DbError> {
        let limit = i64::from(size.get()) + 1;
        let rows = match cursor {
            None => {
                self.0
                    .query("SELECT", "videos.videos", FIRST_PUBLIC_PAGE, &[&limit])
                    .await?
            }
            Some(c) => {
                self.0
                    .query(
                        "SELECT",
                        "videos.videos",
                        NEXT_PUBLIC_PAGE,
                        &[&c.created_at, &c.id, &limit],
                    )
                    .await?
            }
        };
        Ok(split_page(
            rows.iter().map(video).collect(),
            size,
            cursor_of,
        ))
    }

    /// One page of `owner`'s videos, newest first: every one when `everything` (the owner
    /// asks), else the ready public ones.
    pub async fn owner_page(
        &self,
        owner: Uuid,
        everything: bool,
        size: PageSize,
        cursor: Option<Cursor>,
    ) -> Result<(Vec<Video>, Option<Cursor>), DbError> {
        let limit = i64::from(size.get()) + 1;
        let rows = match cursor {
            None => {
                self.0
                    .query(
                        "SELECT",
                        "videos.videos",
                        FIRST_OWNER_PAGE,
                        &[&owner, &everything, &limit],
                    )
                    .await?
            }
            Some(c) => {
                self.0
                    .query(
                        "SELECT",
                        "videos.videos",
                        NEXT_OWNER_PAGE,
                        &[&owner, &everything, &c.created_at, &c.id, &limit],
                    )
                    .await?
            }
        };
        Ok(split_page(
            rows.iter().map(video).collect(),
            size,
            cursor_of,
        ))
    }

    /// The videos of `ids` that exist, in no particular order.
    pub async fn videos(&self, ids: &[Uuid]) -> Result<Vec<Video>, DbError> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM videos.videos WHERE id = ANY($1)"
        );
        let rows = self
            .0
            .query("SELECT", "videos.videos", sql, &[&ids])
            .await?;
        Ok(rows.iter().map(video).collect())
    }

    /// Up to `limit` ready public videos of `owners`, newest first, strictly before
    /// `before` when given.
    pub async fn feed_page(
        &self,
        owners: &[Uuid],
        before: Option<Cursor>,
        limit: i64,
    ) -> Result<Vec<Video>, DbError> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM videos.videos WHERE owner_id = ANY($1)
             AND status = 'ready' AND visibility = 'public'
             AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
             ORDER BY created_at DESC, id DESC LIMIT $4"
        );
        let (at, id) = match before {
            Some(c) => (Some(c.created_at), c.id),
            None => (None, Uuid::nil()),
        };
        let rows = self
            .0
            .query("SELECT", "videos.videos", sql, &[&owners, &at, &id, &limit])
            .await?;
        Ok(rows.iter().map(video).collect())
    }

    /// Changes what is given; the changed video, `None` when it is gone.
    pub async fn update_video(
        &self,
        id: Uuid,
        title: Option<&str>,
        description: Option<&str>,
        visibility: Option<Visibility>,
    ) -> Result<Option<Video>, DbError> {
        let sql = concat!(
            "UPDATE videos.videos SET title = COALESCE($2, title),
                 description = COALESCE($3, description),
                 visibility = COALESCE($4, visibility), updated_at = now()
             WHERE id = $1 RETURNING ",
            columns!()
        );
        let visibility = visibility.map(Visibility::as_str);
        let row = self
            .0
            .query_opt(
                "UPDATE",
                "videos.videos",
                sql,
                &[&id, &title, &description, &visibility],
            )
            .await?;
        Ok(row.as_ref().map(video))
    }

    /// Deletes the video (its jobs go with it); its object and thumbnail keys, `None` when
    /// it was gone already.
    pub async fn delete_video(
        &self,
        id: Uuid,
    ) -> Result<Option<(Option<String>, Option<String>)>, DbError> {
        let row = self
            .0
            .query_opt(
                "DELETE",
                "videos.videos",
                "DELETE FROM videos.videos WHERE id = $1 RETURNING object_key, thumbnail_key",
                &[&id],
            )
            .await?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    pub async fn add_pending_upload(
        &self,
        upload: &PendingUpload,
        expires_at: DateTime<Utc>,
    ) -> Result<(), DbError> {
        let size = i64::try_from(upload.declared_size).unwrap_or(i64::MAX);
        self.0
            .execute(
                "INSERT",
                "videos.pending_uploads",
                "INSERT INTO videos.pending_uploads
                     (video_id, owner_id, upload_id, object_key, title, description, visibility,
                      declared_size, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    &upload.video_id,
                    &upload.owner_id,
                    &upload.upload_id,
                    &upload.object_key,
                    &upload.title,
                    &upload.description,
                    &upload.visibility.as_str(),
                    &size,
                    &expires_at,
                ],
            )
            .await?;
        Ok(())
    }

    pub async fn pending_upload(&self, video_id: Uuid) -> Result<Option<PendingUpload>, DbError> {
        let row = self
            .0
            .query_opt(
                "SELECT",
                "videos.pending_uploads",
                "SELECT video_id, owner_id, upload_id, object_key, title, description, visibility,
                        declared_size
                 FROM videos.pending_uploads WHERE video_id = $1",
                &[&video_id],
            )
            .await?;
        Ok(row.as_ref().map(pending))
    }

    /// Forgets a pending upload; whether there was one.
    pub async fn drop_pending_upload(&self, video_id: Uuid) -> Result<bool, DbError> {
        let deleted = self
            .0
            .execute(
                "DELETE",
                "videos.pending_uploads",
                "DELETE FROM videos.pending_uploads WHERE video_id = $1",
                &[&video_id],
            )
            .await?;
        Ok(deleted == 1)
    }

    /// Pending uploads whose time ran out (at most 100 at a time).
    pub async fn expired_uploads(&self) -> Result<Vec<PendingUpload>, DbError> {
        let rows = self
            .0
            .query(
                "SELECT",
                "videos.pending_uploads",
                "SELECT video_id, owner_id, upload_id, object_key, title, description, visibility,
                        declared_size
                 FROM videos.pending_uploads WHERE expires_at < now() LIMIT 100",
                &[],
            )
            .await?;
        Ok(rows.iter().map(pending).collect())
    }

    /// Whether any video or pending upload refers to the object `key`.
    pub async fn object_referenced(&self, key: &str) -> Result<bool, DbError> {
        let row = self
            .0
            .query_one(
                "SELECT",
                "videos.videos",
                "SELECT EXISTS (SELECT 1 FROM videos.videos
                                WHERE object_key = $1 OR thumbnail_key = $1)
                     OR EXISTS (SELECT 1 FROM videos.pending_uploads WHERE object_key = $1)",
                &[&key],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Records an uploaded video and queues its processing, in one transaction: both or
    /// neither (and a direct upload's pending record goes in the same transaction). Each
    /// step has the span the design document names.
    pub async fn create_video_with_job(
        &self,
        video: &NewVideo<'_>,
        job_id: Uuid,
        max_attempts: i32,
        traceparent: Option<&str>,
    ) -> Result<(), DbError> {
        let mut conn = self.0.pool().get().await?;
        let tx = conn.transaction().await?;
        tx.execute(
            "DELETE FROM videos.pending_uploads WHERE video_id = $1",
            &[&video.id],
        )
        .await?;
        let size = i64::try_from(video.size_bytes).unwrap_or(i64::MAX);
        tx.execute(
            "INSERT INTO videos.videos
                 (id, owner_id, title, description, visibility, status, object_key,
                  content_type, size_bytes, sha256)
             VALUES ($1, $2, $3, $4, $5, 'uploaded', $6, $7, $8, $9)",
            &[
                &video.id,
                &video.owner_id,
                &video.title,
                &video.description,
                &video.visibility.as_str(),
                &video.object_key,
                &video.content_type,
                &size,
                &video.sha256,
            ],
        )
        .instrument(tracing::info_span!("db_create_video", video_id = %video.id))
        .await?;
        tx.execute(
            "INSERT INTO videos.jobs (id, video_id, max_attempts, traceparent)
             VALUES ($1, $2, $3, $4)",
            &[&job_id, &video.id, &max_attempts, &traceparent],
        )
        .instrument(tracing::info_span!("queue_processing", job_id = %job_id))
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Claims the next due job under a lease of `lease_secs`: a ready one, or one whose
    /// lease ran out (its worker died). Counts the attempt.
    pub async fn claim_job(&self, lease_secs: i64) -> Result<Option<Job>, DbError> {
        let row = self
            .0
            .query_opt(
                "UPDATE",
                "videos.jobs",
                "UPDATE videos.jobs j SET state = 'leased', attempts = j.attempts + 1,
                        locked_until = now() + make_interval(secs => $1), updated_at = now()
                 WHERE j.id = (
                     SELECT id FROM videos.jobs
                     WHERE run_at <= now()
                       AND (state = 'ready' OR (state = 'leased' AND locked_until < now()))
                     ORDER BY run_at
                     FOR UPDATE SKIP LOCKED
                     LIMIT 1)
                 RETURNING j.id, j.video_id, j.attempts, j.max_attempts, j.traceparent",
                &[&(lease_secs as f64)],
            )
            .await?;
        Ok(row.map(|r| Job {
            id: r.get(0),
            video_id: r.get(1),
            attempt: r.get(2),
            max_attempts: r.get(3),
            traceparent: r.get(4),
        }))
    }

    /// Moves a video to `processing` as its job starts.
    pub async fn start_processing(&self, video_id: Uuid) -> Result<(), DbError> {
        self.0
            .execute(
                "UPDATE",
                "videos.videos",
                "UPDATE videos.videos SET status = 'processing', updated_at = now()
                 WHERE id = $1 AND status IN ('uploaded', 'processing')",
                &[&video_id],
            )
            .await?;
        Ok(())
    }

    /// The job succeeded: the video is ready with what the probe found. Only the worker
    /// holding the lease can finish it, once.
    pub async fn finish_job(&self, job: &Job, probed: &Probed) -> Result<bool, DbError> {
        async {
            let mut conn = self.0.pool().get().await?;
            let tx = conn.transaction().await?;
            let finished = tx
                .execute(
                    "UPDATE videos.jobs SET state = 'done', locked_until = NULL, updated_at = now()
                     WHERE id = $1 AND state = 'leased' AND attempts = $2",
                    &[&job.id, &job.attempt],
                )
                .await?;
            if finished != 1 {
                return Ok(false);
            }
            let duration = i32::try_from(probed.duration_seconds).unwrap_or(i32::MAX);
            let width = i32::try_from(probed.width).unwrap_or(i32::MAX);
            let height = i32::try_from(probed.height).unwrap_or(i32::MAX);
            tx.execute(
                "UPDATE videos.videos SET status = 'ready', duration_seconds = $2, width = $3,
                        height = $4, codec = $5, thumbnail_key = $6, failure_reason = NULL,
                        updated_at = now()
                 WHERE id = $1",
                &[
                    &job.video_id,
                    &duration,
                    &width,
                    &height,
                    &probed.codec,
                    &probed.thumbnail_key,
                ],
            )
            .await?;
            tx.commit().await?;
            Ok(true)
        }
        .instrument(db_span("UPDATE", "videos.jobs"))
        .await
    }

    /// The job failed. With `retry_in`, it runs again then (while attempts remain);
    /// without, or out of attempts, it is dead and the video `failed` with `reason`.
    /// Returns whether the job is dead.
    pub async fn fail_job(
        &self,
        job: &Job,
        reason: &str,
        retry_in: Option<std::time::Duration>,
    ) -> Result<bool, DbError> {
        async {
            let mut conn = self.0.pool().get().await?;
            let tx = conn.transaction().await?;
            let dead = retry_in.is_none() || job.attempt >= job.max_attempts;
            let delay = retry_in.map_or(0.0, |d| d.as_secs_f64());
            let updated = tx
                .execute(
                    "UPDATE videos.jobs SET state = CASE WHEN $3 THEN 'dead' ELSE 'ready' END,
                            run_at = now() + make_interval(secs => $4), locked_until = NULL,
                            last_error = $5, updated_at = now()
                     WHERE id = $1 AND state = 'leased' AND attempts = $2",
                    &[&job.id, &job.attempt, &dead, &delay, &reason],
                )
                .await?;
            if updated == 1 && dead {
                tx.execute(
                    "UPDATE videos.videos SET status = 'failed', failure_reason = $2,
                            updated_at = now()
                     WHERE id = $1",
                    &[&job.video_id, &reason],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(updated == 1 && dead)
        }
        .instrument(db_span("UPDATE", "videos.jobs"))
        .await
    }

    /// Deletes jobs done more than a week ago (dead ones stay until their video goes).
    pub async fn prune_done_jobs(&self) -> Result<u64, DbError> {
        self.0
            .execute(
                "DELETE",
                "videos.jobs",
                "DELETE FROM videos.jobs
                 WHERE state = 'done' AND updated_at < now() - interval '7 days'",
                &[],
            )
            .await
    }

    /// The SHA-256 the upload recorded of the video's object.
    pub async fn recorded_digest(&self, video_id: Uuid) -> Result<Option<Vec<u8>>, DbError> {
        let row = self
            .0
            .query_opt(
                "SELECT",
                "videos.videos",
                "SELECT sha256 FROM videos.videos WHERE id = $1",
                &[&video_id],
            )
            .await?;
        Ok(row.and_then(|r| r.get(0)))
    }

    pub async fn queue_depth(&self) -> Result<QueueDepth, DbError> {
        let row = self
            .0
            .query_one(
                "SELECT",
                "videos.jobs",
                "SELECT count(*) FILTER (WHERE state = 'ready'),
                        count(*) FILTER (WHERE state = 'leased'),
                        count(*) FILTER (WHERE state = 'dead')
                 FROM videos.jobs",
                &[],
            )
            .await?;
        Ok(QueueDepth {
            ready: row.get(0),
            leased: row.get(1),
            dead: row.get(2),
        })
    }
}
