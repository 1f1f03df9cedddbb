//! video-service's use cases: typed arguments in (domain types, the caller's id), domain
//! values or a [`VideoError`] out. No protobuf here; `grpc.rs` translates.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use platform::pagination::{Cursor, PageSize};
use telemetry::events::Category;
use tracing::Instrument;
use uuid::Uuid;

use chrono::{DateTime, Utc};
use proto::common::v1::VideoStats;

use crate::counts::Counts;
use crate::domain::InvalidField;
use crate::domain::{Container, Description, SNIFF_BYTES, Title, VideoStatus, Visibility, may_see};
use crate::error::VideoError;
use crate::objects::{Objects, PART_SIZE, PutError};
use crate::store::{NewVideo, PendingUpload, Store, Video};
use crate::{PlaybackSettings, ProcessingSettings, UploadSettings};

/// A video as its reader sees it: the row, and a link to its thumbnail once it is ready.
#[derive(Debug, Clone)]
pub struct VideoView {
    pub video: Video,
    pub thumbnail_url: Option<String>,
}

/// A new upload's metadata, every field valid.
#[derive(Debug, Clone)]
pub struct UploadRequest {
    pub title: Title,
    pub description: Description,
    pub visibility: Visibility,
    /// What the client says it sends; 0 when it does not say.
    pub declared_size: u64,
}

/// A change of a video's metadata; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct VideoChanges {
    pub title: Option<Title>,
    pub description: Option<Description>,
    pub visibility: Option<Visibility>,
}

/// A direct upload begun: where to send each part, until when.
#[derive(Debug, Clone)]
pub struct DirectUpload {
    pub video_id: Uuid,
    pub upload_id: String,
    pub part_size: u64,
    /// (part number, presigned PUT URL), from 1.
    pub parts: Vec<(u32, String)>,
    pub expires_at: DateTime<Utc>,
}

/// An upload that completed: the video is `uploaded`, its processing queued.
#[derive(Debug, Clone, Copy)]
pub struct Uploaded {
    pub video_id: Uuid,
    pub job_id: Uuid,
}

/// Ids a batched lookup takes.
pub const MAX_BATCH: usize = 100;
/// Owners a feed page draws from (user-service's followee bound).
pub const MAX_FEED_OWNERS: usize = 5000;
/// Videos a feed page asks for (a page and one more).
pub const MAX_FEED_LIMIT: u32 = 101;

#[derive(Clone)]
pub struct Videos {
    store: Store,
    objects: Objects,
    counts: Counts,
    /// Uploads received or verified at once: each holds up to an 8 MiB part in memory.
    upload_slots: Arc<Semaphore>,
    uploads: UploadSettings,
    processing: ProcessingSettings,
    playback: PlaybackSettings,
}

impl Videos {
    pub fn new(
        store: Store,
        objects: Objects,
        counts: Counts,
        uploads: UploadSettings,
        processing: ProcessingSettings,
        playback: PlaybackSettings,
    ) -> Self {
        Self {
            store,
            objects,
            counts,
            upload_slots: Arc::new(Semaphore::new(uploads.max_concurrent)),
            uploads,
            processing,
            playback,
        }
    }

    /// A video the caller may see.
    pub async fn video(&self, caller: Option<Uuid>, id: Uuid) -> Result<VideoView, VideoError> {
        let video = self
            .store
            .video(id)
            .await?
            .filter(|v| may_see(v.visibility, v.owner_id, caller))
            .ok_or(VideoError::NotFound(id))?;
        Ok(self.view(video).await)
    }

    /// A video the caller may see, with its counts (`None` when they could not be had).
    pub async fn video_with_counts(
        &self,
        caller: Option<Uuid>,
        id: Uuid,
    ) -> Result<(VideoView, Option<VideoStats>), VideoError> {
        // The row and the counts are independent: ask for both at once.
        let (video, counts) = tokio::join!(self.video(caller, id), self.counts.of(id));
        Ok((video?, counts))
    }

    /// A presigned GET of a ready video the caller may see, and when it stops working.
    pub async fn playback(
        &self,
        caller: Option<Uuid>,
        id: Uuid,
    ) -> Result<(String, DateTime<Utc>), VideoError> {
        let view = self.video(caller, id).await?;
        let key = match (&view.video.status, &view.video.object_key) {
            (VideoStatus::Ready, Some(key)) => key,
            _ => return Err(VideoError::NotReady(id)),
        };
        self.objects
            .presigned_get(key, self.playback_ttl())
            .await
            .map_err(VideoError::Storage)
    }

    /// A video the caller owns. Others get NOT_FOUND for what they may not see and
    /// PERMISSION_DENIED for what they may.
    async fn owned(&self, caller: Uuid, id: Uuid) -> Result<Video, VideoError> {
        let video = self
            .store
            .video(id)
            .await?
            .filter(|v| may_see(v.visibility, v.owner_id, Some(caller)))
            .ok_or(VideoError::NotFound(id))?;
        if video.owner_id != caller {
            return Err(VideoError::Forbidden(id));
        }
        Ok(video)
    }

    pub async fn update(
        &self,
        caller: Uuid,
        id: Uuid,
        changes: VideoChanges,
    ) -> Result<VideoView, VideoError> {
        self.owned(caller, id).await?;
        let VideoChanges {
            title,
            description,
            visibility,
        } = changes;
        let video = self
            .store
            .update_video(
                id,
                title.as_ref().map(Title::as_str),
                description.as_ref().map(Description::as_str),
                visibility,
            )
            .await?
            .ok_or(VideoError::NotFound(id))?;
        Ok(self.view(video).await)
    }

    /// Deletes the video; then its object, thumbnail and counts (a failure there is logged
    /// and left to the sweep: the video is gone for everyone already).
    pub async fn delete(&self, caller: Uuid, id: Uuid) -> Result<(), VideoError> {
        self.owned(caller, id).await?;
        let Some((object, thumbnail)) = self.store.delete_video(id).await? else {
            return Err(VideoError::NotFound(id));
        };
        for key in [object, thumbnail].into_iter().flatten() {
            if let Err(e) = self.objects.delete(&key).await {
                tracing::warn!(%key, error = %e, "object of a deleted video not deleted");
            }
        }
        if let Err(e) = self.counts.forget(id).await {
            tracing::warn!(video_id = %id, error = %e, "counts of a deleted video not deleted");
        }
        telemetry::business_event!(
            Category::Content,
            "video_deleted",
            user_id = %caller,
            video_id = %id
        );
        Ok(())
    }

    /// Ready public videos, newest first.
    pub async fn public_page(
        &self,
        size: PageSize,
        cursor: Option<Cursor>,
    ) -> Result<(Vec<VideoView>, Option<Cursor>), VideoError> {
        let (videos, next) = self.store.public_page(size, cursor).await?;
        Ok((self.views(videos).await, next))
    }

    /// `owner`'s videos: all of them to the owner, the ready public ones to anyone else.
    pub async fn owner_page(
        &self,
        caller: Option<Uuid>,
        owner: Uuid,
        size: PageSize,
        cursor: Option<Cursor>,
    ) -> Result<(Vec<VideoView>, Option<Cursor>), VideoError> {
        let everything = caller == Some(owner);
        let (videos, next) = self
            .store
            .owner_page(owner, everything, size, cursor)
            .await?;
        Ok((self.views(videos).await, next))
    }

    /// The videos of `ids` the caller may see, without links (a page of another
    /// service's items).
    pub async fn batch(
        &self,
        caller: Option<Uuid>,
        ids: &[Uuid],
    ) -> Result<Vec<Video>, VideoError> {
        let mut videos = self.store.videos(ids).await?;
        videos.retain(|v| may_see(v.visibility, v.owner_id, caller));
        Ok(videos)
    }

    /// Ready public videos of `owners`, newest first, before `before`.
    pub async fn feed_videos(
        &self,
        owners: &[Uuid],
        before: Option<Cursor>,
        limit: u32,
    ) -> Result<Vec<Video>, VideoError> {
        if owners.len() > MAX_FEED_OWNERS {
            return Err(InvalidField::new(
                "owner_ids",
                format!("at most {MAX_FEED_OWNERS} owners, got {}", owners.len()),
            )
            .into());
        }
        if !(1..=MAX_FEED_LIMIT).contains(&limit) {
            return Err(InvalidField::new(
                "limit",
                format!("limit must be from 1 to {MAX_FEED_LIMIT}, got {limit}"),
            )
            .into());
        }
        Ok(self
            .store
            .feed_page(owners, before, i64::from(limit))
            .await?)
    }

    /// The counts of a page of videos, asked for at once; empty when they could not be had.
    pub async fn page_counts(
        &self,
        videos: &[VideoView],
    ) -> std::collections::HashMap<String, VideoStats> {
        let ids: Vec<Uuid> = videos.iter().map(|v| v.video.id).collect();
        self.counts.of_many(&ids).await
    }

    async fn views(&self, videos: Vec<Video>) -> Vec<VideoView> {
        let mut views = Vec::with_capacity(videos.len());
        for video in videos {
            views.push(self.view(video).await);
        }
        views
    }

    /// Presigning is local (a signature, no request): cheap enough per item.
    async fn view(&self, video: Video) -> VideoView {
        let thumbnail_url = match &video.thumbnail_key {
            Some(key) => self
                .objects
                .presigned_get(key, self.playback_ttl())
                .await
                .map(|(url, _)| url)
                .map_err(|e| tracing::warn!(error = %e, "thumbnail URL not signed"))
                .ok(),
            None => None,
        };
        VideoView {
            video,
            thumbnail_url,
        }
    }

    fn playback_ttl(&self) -> Duration {
        Duration::from_secs(self.playback.url_ttl_secs)
    }

    /// Streams a video into the bucket, then records it and queues its processing in one
    /// transaction. Whatever fails, nothing is left behind: the multipart upload is
    /// aborted, or the object deleted when the database refuses the row.
    pub async fn upload<S>(
        &self,
        owner: Uuid,
        request: UploadRequest,
        chunks: S,
    ) -> Result<Uploaded, VideoError>
    where
        S: Stream<Item = Result<Bytes, String>> + Unpin,
    {
        let started = Instant::now();
        let Ok(_slot) = Arc::clone(&self.upload_slots).try_acquire_owned() else {
            let busy = Err(VideoError::Busy);
            count_upload(&busy, started);
            return busy;
        };
        let video_id = Uuid::now_v7();
        let span = tracing::info_span!(
            "video_upload",
            user_id = %owner,
            file_size = request.declared_size,
            file_type = tracing::field::Empty,
            video_id = %video_id,
        );
        let result = self
            .store_upload(owner, video_id, &request, chunks)
            .instrument(span)
            .await;
        count_upload(&result, started);
        result
    }

    /// Begins a direct upload of `request.declared_size` bytes: a multipart upload in the
    /// bucket and a presigned PUT per part. The client sends the parts itself, then
    /// completes it with [`Videos::complete_upload`].
    pub async fn create_upload(
        &self,
        owner: Uuid,
        request: UploadRequest,
    ) -> Result<DirectUpload, VideoError> {
        let size = request.declared_size;
        if size == 0 {
            return Err(InvalidField::new("size_bytes", "must be the file's size, above 0").into());
        }
        let max = self.uploads.max_size_bytes;
        if size > max {
            return Err(VideoError::TooLarge { max });
        }
        let video_id = Uuid::now_v7();
        let key = format!("videos/{video_id}");
        let upload_id = self
            .objects
            .start_multipart(&key, None)
            .await
            .map_err(VideoError::Storage)?;
        let ttl = Duration::from_secs(self.uploads.direct_upload_ttl_secs);
        let count = size.div_ceil(PART_SIZE as u64);
        let mut parts = Vec::new();
        let mut presigned = Ok(());
        for number in 1..=count {
            let number = u32::try_from(number).unwrap_or(u32::MAX);
            match self
                .objects
                .presigned_part(
                    &key,
                    &upload_id,
                    i32::try_from(number).unwrap_or(i32::MAX),
                    ttl,
                )
                .await
            {
                Ok(url) => parts.push((number, url)),
                Err(e) => {
                    presigned = Err(VideoError::Storage(e));
                    break;
                }
            }
        }
        let expires_at = Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_default();
        let recorded = match presigned {
            Ok(()) => self
                .store
                .add_pending_upload(
                    &PendingUpload {
                        video_id,
                        owner_id: owner,
                        upload_id: upload_id.clone(),
                        object_key: key.clone(),
                        title: request.title.as_str().to_owned(),
                        description: request.description.as_str().to_owned(),
                        visibility: request.visibility,
                        declared_size: size,
                    },
                    expires_at,
                )
                .await
                .map_err(VideoError::from),
            Err(e) => Err(e),
        };
        if let Err(e) = recorded {
            if let Err(abort) = self.objects.abort_multipart(&key, &upload_id).await {
                tracing::warn!(%key, error = %abort, "multipart upload not aborted");
            }
            return Err(e);
        }
        Ok(DirectUpload {
            video_id,
            upload_id,
            part_size: PART_SIZE as u64,
            parts,
            expires_at,
        })
    }

    /// Completes the caller's direct upload with the parts' ETags, verifies the object
    /// (its size is the declared one, its bytes a video) and records it with its
    /// processing job. A refused object is deleted.
    pub async fn complete_upload(
        &self,
        caller: Uuid,
        video_id: Uuid,
        parts: Vec<(i32, String)>,
    ) -> Result<Uploaded, VideoError> {
        let started = Instant::now();
        let Ok(_slot) = Arc::clone(&self.upload_slots).try_acquire_owned() else {
            let busy = Err(VideoError::Busy);
            count_upload(&busy, started);
            return busy;
        };
        let span = tracing::info_span!(
            "video_upload",
            user_id = %caller,
            file_size = tracing::field::Empty,
            file_type = tracing::field::Empty,
            video_id = %video_id,
        );
        let result = self
            .complete(caller, video_id, parts)
            .instrument(span)
            .await;
        count_upload(&result, started);
        result
    }

    async fn complete(
        &self,
        caller: Uuid,
        video_id: Uuid,
        parts: Vec<(i32, String)>,
    ) -> Result<Uploaded, VideoError> {
        let pending = self
            .store
            .pending_upload(video_id)
            .await?
            .filter(|p| p.owner_id == caller)
            .ok_or(VideoError::NotFound(video_id))?;
        if parts.is_empty() {
            return Err(InvalidField::new("parts", "is required").into());
        }
        // The list must be the parts stored, in order, with the ETags their PUTs answered:
        // checked against the store first, so a wrong list is the client's mistake (400)
        // whatever the store would make of it, and the upload stays completable.
        let stored = self
            .objects
            .stored_parts(&pending.object_key, &pending.upload_id)
            .await
            .map_err(|e| {
                if e.contains("NoSuchUpload") {
                    VideoError::from(InvalidField::new("parts", "the upload is no longer open"))
                } else {
                    VideoError::Storage(e)
                }
            })?;
        let listed_as_stored = parts.len() == stored.len()
            && parts
                .iter()
                .zip(&stored)
                .all(|((number, etag), (s_number, s_etag))| {
                    let etag = etag.trim().trim_matches('"');
                    number == s_number
                        && !etag.is_empty()
                        && s_etag.as_ref().is_none_or(|stored| etag == stored)
                });
        if !listed_as_stored {
            return Err(InvalidField::new(
                "parts",
                format!(
                    "must list every stored part in order with its ETag: {} part(s) are stored",
                    stored.len()
                ),
            )
            .into());
        }
        tracing::Span::current().record("file_size", pending.declared_size);
        let key = pending.object_key.clone();
        let s3 = tracing::info_span!(
            "s3_upload",
            s3_key = %key,
            s3_bucket = %self.objects.bucket(),
            part_count = parts.len(),
        );
        self.objects
            .complete_multipart(&key, &pending.upload_id, parts)
            .instrument(s3.clone())
            .await
            .map_err(|e| {
                // The client's own mistakes (wrong or missing parts) are not an outage.
                if [
                    "InvalidPart",
                    "InvalidPartOrder",
                    "NoSuchUpload",
                    "EntityTooSmall",
                ]
                .iter()
                .any(|code| e.contains(code))
                {
                    VideoError::from(InvalidField::new("parts", e))
                } else {
                    VideoError::Storage(e)
                }
            })?;
        let verified = self.verify(&pending).instrument(s3).await;
        let (size_bytes, sha256, container) = match verified {
            Ok(verified) => verified,
            Err(e) => {
                // Refused: neither the object nor the pending record stays.
                if let Err(delete) = self.objects.delete(&key).await {
                    tracing::warn!(%key, error = %delete, "refused object not deleted");
                }
                self.store.drop_pending_upload(video_id).await?;
                return Err(e);
            }
        };
        tracing::Span::current().record("file_type", container.mime_type());
        let job_id = Uuid::now_v7();
        self.store
            .create_video_with_job(
                &NewVideo {
                    id: video_id,
                    owner_id: caller,
                    title: &pending.title,
                    description: &pending.description,
                    visibility: pending.visibility,
                    object_key: &key,
                    content_type: container.mime_type(),
                    size_bytes,
                    sha256: &sha256,
                },
                job_id,
                self.processing.max_attempts,
                telemetry::current_traceparent().as_deref(),
            )
            .await?;
        uploaded_event(caller, video_id, size_bytes);
        Ok(Uploaded { video_id, job_id })
    }

    /// The completed object's size, SHA-256 and container, if it is what was declared.
    async fn verify(
        &self,
        pending: &PendingUpload,
    ) -> Result<(u64, Vec<u8>, Container), VideoError> {
        let key = &pending.object_key;
        let (size, sha256) = self
            .objects
            .digest(key)
            .await
            .map_err(VideoError::Storage)?;
        let max = self.uploads.max_size_bytes;
        if size > max {
            return Err(VideoError::TooLarge { max });
        }
        if size != pending.declared_size {
            return Err(InvalidField::new(
                "parts",
                format!(
                    "the parts hold {size} bytes, not the {} declared",
                    pending.declared_size
                ),
            )
            .into());
        }
        let head = self
            .objects
            .head_bytes(key, SNIFF_BYTES)
            .await
            .map_err(VideoError::Storage)?;
        let container = Container::sniff(&head).ok_or(VideoError::NotAVideo)?;
        Ok((size, sha256, container))
    }

    /// Aborts direct uploads left incomplete past their time, and deletes objects no video
    /// refers to (left by a crash between completing an upload and recording it) once
    /// they are older than that time too. How many of each.
    pub async fn sweep(&self) -> Result<(usize, usize), VideoError> {
        let mut aborted = 0;
        for upload in self.store.expired_uploads().await? {
            match self
                .objects
                .abort_multipart(&upload.object_key, &upload.upload_id)
                .await
            {
                Ok(()) => {}
                // Already completed or aborted: nothing is left to free.
                Err(e) if e.contains("NoSuchUpload") => {}
                Err(e) => {
                    tracing::warn!(key = %upload.object_key, error = %e, "abandoned upload not aborted");
                    continue;
                }
            }
            self.store.drop_pending_upload(upload.video_id).await?;
            aborted += 1;
        }
        let ttl = chrono::Duration::seconds(
            i64::try_from(self.uploads.direct_upload_ttl_secs).unwrap_or(i64::MAX / 1000),
        );
        let before = Utc::now() - ttl;
        let mut deleted = 0;
        for prefix in ["videos/", "thumbnails/"] {
            let keys = self
                .objects
                .keys_older_than(prefix, before)
                .await
                .map_err(VideoError::Storage)?;
            for key in keys {
                if !self.store.object_referenced(&key).await? {
                    match self.objects.delete(&key).await {
                        Ok(()) => deleted += 1,
                        Err(e) => tracing::warn!(%key, error = %e, "orphaned object not deleted"),
                    }
                }
            }
        }
        let pruned = self.store.prune_done_jobs().await?;
        if aborted + deleted > 0 || pruned > 0 {
            tracing::info!(aborted, deleted, pruned, "upload sweep");
        }
        Ok((aborted, deleted))
    }

    async fn store_upload<S>(
        &self,
        owner: Uuid,
        video_id: Uuid,
        request: &UploadRequest,
        mut chunks: S,
    ) -> Result<Uploaded, VideoError>
    where
        S: Stream<Item = Result<Bytes, String>> + Unpin,
    {
        let max = self.uploads.max_size_bytes;
        if request.declared_size > max {
            return Err(VideoError::TooLarge { max });
        }
        // The type is decided by the first bytes, before anything is stored.
        let mut head = BytesMut::new();
        while head.len() < SNIFF_BYTES {
            match chunks.next().await {
                Some(Ok(chunk)) => head.extend_from_slice(&chunk),
                Some(Err(e)) => return Err(VideoError::Interrupted(e)),
                None => break,
            }
        }
        let container = Container::sniff(&head).ok_or(VideoError::NotAVideo)?;
        tracing::Span::current().record("file_type", container.mime_type());

        let key = format!("videos/{video_id}.{}", container.extension());
        let s3 = tracing::info_span!(
            "s3_upload",
            s3_key = %key,
            s3_bucket = %self.objects.bucket(),
            part_count = tracing::field::Empty,
        );
        let stored = self
            .objects
            .put_stream(&key, container.mime_type(), head.freeze(), chunks, max)
            .instrument(s3.clone())
            .await
            .map_err(|e| match e {
                PutError::TooLarge { max } => VideoError::TooLarge { max },
                PutError::Interrupted(e) => VideoError::Interrupted(e),
                PutError::Storage(e) => VideoError::Storage(e),
            })?;
        s3.record("part_count", stored.parts);

        let job_id = Uuid::now_v7();
        let recorded = self
            .store
            .create_video_with_job(
                &NewVideo {
                    id: video_id,
                    owner_id: owner,
                    title: request.title.as_str(),
                    description: request.description.as_str(),
                    visibility: request.visibility,
                    object_key: &key,
                    content_type: container.mime_type(),
                    size_bytes: stored.size_bytes,
                    sha256: &stored.sha256,
                },
                job_id,
                self.processing.max_attempts,
                telemetry::current_traceparent().as_deref(),
            )
            .await;
        if let Err(e) = recorded {
            // No row references the object: remove it (the sweep would, later).
            if let Err(delete) = self.objects.delete(&key).await {
                tracing::warn!(%key, error = %delete, "orphaned object not deleted");
            }
            return Err(e.into());
        }
        uploaded_event(owner, video_id, stored.size_bytes);
        Ok(Uploaded { video_id, job_id })
    }
}

/// Counts an upload's outcome: `rejected` for the client's faults, `failed` for ours.
fn count_upload(result: &Result<Uploaded, VideoError>, started: Instant) {
    let status = match result {
        Ok(_) => "success",
        Err(
            VideoError::TooLarge { .. }
            | VideoError::NotAVideo
            | VideoError::Invalid(_)
            | VideoError::Interrupted(_)
            | VideoError::NotFound(_)
            | VideoError::Forbidden(_)
            // Shed on purpose, to be retried: not a failure of the system.
            | VideoError::Busy,
        ) => "rejected",
        Err(_) => "failed",
    };
    metrics::counter!(telemetry::metrics::VIDEO_UPLOADS_TOTAL, "status" => status).increment(1);
    metrics::histogram!(
        telemetry::metrics::VIDEO_UPLOAD_DURATION_SECONDS,
        "status" => status
    )
    .record(started.elapsed().as_secs_f64());
}

fn uploaded_event(owner: Uuid, video_id: Uuid, size_bytes: u64) {
    metrics::counter!(
        telemetry::metrics::CONTENT_UPLOADS_TOTAL,
        "content_type" => "video"
    )
    .increment(1);
    metrics::histogram!(telemetry::metrics::VIDEO_UPLOAD_SIZE_BYTES).record(size_bytes as f64);
    telemetry::business_event!(
        Category::Content,
        "video_uploaded",
        user_id = %owner,
        video_id = %video_id,
        size_bytes = size_bytes
    );
}
