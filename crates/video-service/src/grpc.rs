//! The tonic adapter: parses protobuf into domain types, calls one use case, converts the
//! answer back. No rule lives here.

use futures::StreamExt;
use platform::identity::Caller;
use platform::pagination::{Cursor, parse_request};
use proto::serde_ext::to_timestamp;
use proto::video::v1::upload_video_request::Part;
use proto::video::v1::video_service_server::VideoService;
use proto::video::v1::{
    BatchGetVideosRequest, BatchGetVideosResponse, CompleteUploadRequest, CompletedPart,
    CreateUploadRequest, CreatedUpload, DeleteVideoRequest, DeleteVideoResponse,
    GetPlaybackRequest, GetVideoRequest, GetVideoResponse, ListFeedVideosRequest,
    ListFeedVideosResponse, ListUserVideosRequest, ListVideosRequest, ListVideosResponse, PartUrl,
    Playback, UpdateVideoRequest, UploadMetadata, UploadVideoRequest, UploadVideoResponse,
    Video as VideoMsg, VideoStatus as StatusMsg, Visibility as VisibilityMsg,
};
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

use crate::app::{
    DirectUpload, MAX_BATCH, MAX_FEED_OWNERS, UploadRequest, Uploaded, VideoChanges, VideoView,
    Videos,
};
use crate::domain::{Description, InvalidField, Title, VideoStatus, Visibility};
use crate::error::VideoError;
use crate::store::Video;

type Answer<T> = Result<Response<T>, Status>;

pub struct VideoApi {
    videos: Videos,
}

impl VideoApi {
    pub fn new(videos: Videos) -> Self {
        Self { videos }
    }
}

fn parse_id(field: &'static str, raw: &str) -> Result<Uuid, VideoError> {
    Ok(platform::field::parse_uuid(field, raw)?)
}

fn to_message(view: VideoView) -> VideoMsg {
    let VideoView {
        video,
        thumbnail_url,
    } = view;
    let Video {
        id,
        owner_id,
        title,
        description,
        duration_seconds,
        status,
        visibility,
        failure_reason,
        size_bytes,
        width,
        height,
        codec,
        object_key: _,
        thumbnail_key: _,
        tags,
        created_at,
    } = video;
    let status = match status {
        VideoStatus::Uploaded => StatusMsg::Uploaded,
        VideoStatus::Processing => StatusMsg::Processing,
        VideoStatus::Ready => StatusMsg::Ready,
        VideoStatus::Failed => StatusMsg::Failed,
    };
    let visibility = match visibility {
        Visibility::Public => VisibilityMsg::Public,
        Visibility::Unlisted => VisibilityMsg::Unlisted,
        Visibility::Private => VisibilityMsg::Private,
    };
    VideoMsg {
        id: id.to_string(),
        owner_id: owner_id.to_string(),
        title,
        description,
        duration_seconds,
        status: status as i32,
        created_at: Some(to_timestamp(created_at)),
        tags,
        visibility: visibility as i32,
        failure_reason,
        size_bytes,
        width,
        height,
        codec,
        thumbnail_url,
    }
}

impl VideoApi {
    /// A page of videos with their counts, asked for in one call.
    async fn page(&self, videos: Vec<VideoView>, next: Option<Cursor>) -> ListVideosResponse {
        let stats = self.videos.page_counts(&videos).await;
        ListVideosResponse {
            videos: videos.into_iter().map(to_message).collect(),
            next_page_token: next.map(|c| c.encode()).unwrap_or_default(),
            stats,
        }
    }
}

/// A video without links, for another service's page.
fn bare(video: Video) -> VideoMsg {
    to_message(VideoView {
        video,
        thumbnail_url: None,
    })
}

fn uploaded(uploaded: Uploaded) -> UploadVideoResponse {
    let Uploaded { video_id, job_id } = uploaded;
    UploadVideoResponse {
        video_id: video_id.to_string(),
        status: StatusMsg::Uploaded as i32,
        job_id: job_id.to_string(),
    }
}

fn upload_request(metadata: UploadMetadata) -> Result<UploadRequest, VideoError> {
    let UploadMetadata {
        title,
        description,
        visibility,
        declared_size,
        file_name: _,
    } = metadata;
    upload_fields(&title, &description, visibility, declared_size)
}

fn upload_fields(
    title: &str,
    description: &str,
    visibility: i32,
    declared_size: u64,
) -> Result<UploadRequest, VideoError> {
    let visibility = match VisibilityMsg::try_from(visibility) {
        Ok(VisibilityMsg::Unspecified | VisibilityMsg::Public) => Visibility::Public,
        Ok(VisibilityMsg::Unlisted) => Visibility::Unlisted,
        Ok(VisibilityMsg::Private) => Visibility::Private,
        Err(_) => {
            return Err(
                InvalidField::new("visibility", "must be public, unlisted or private").into(),
            );
        }
    };
    Ok(UploadRequest {
        title: Title::parse(title)?,
        description: Description::parse(description)?,
        visibility,
        declared_size,
    })
}

#[tonic::async_trait]
impl VideoService for VideoApi {
    async fn get_video(&self, request: Request<GetVideoRequest>) -> Answer<GetVideoResponse> {
        let caller = Caller::of(&request).user_id();
        let id = parse_id("id", &request.get_ref().id)?;
        let (video, stats) = self.videos.video_with_counts(caller, id).await?;
        Ok(Response::new(GetVideoResponse {
            video: Some(to_message(video)),
            stats,
        }))
    }

    async fn get_playback(&self, request: Request<GetPlaybackRequest>) -> Answer<Playback> {
        let caller = Caller::of(&request).user_id();
        let id = parse_id("id", &request.get_ref().id)?;
        let (url, expires_at) = self.videos.playback(caller, id).await?;
        Ok(Response::new(Playback {
            url,
            expires_at: Some(to_timestamp(expires_at)),
        }))
    }

    async fn update_video(&self, request: Request<UpdateVideoRequest>) -> Answer<VideoMsg> {
        let caller = Caller::require_user(&request)?;
        let UpdateVideoRequest {
            id,
            title,
            description,
            visibility,
        } = request.into_inner();
        let id = parse_id("id", &id)?;
        let changes = VideoChanges {
            title: title
                .as_deref()
                .map(Title::parse)
                .transpose()
                .map_err(VideoError::from)?,
            description: description
                .as_deref()
                .map(Description::parse)
                .transpose()
                .map_err(VideoError::from)?,
            visibility: match VisibilityMsg::try_from(visibility) {
                Ok(VisibilityMsg::Unspecified) => None,
                Ok(VisibilityMsg::Public) => Some(Visibility::Public),
                Ok(VisibilityMsg::Unlisted) => Some(Visibility::Unlisted),
                Ok(VisibilityMsg::Private) => Some(Visibility::Private),
                Err(_) => {
                    return Err(VideoError::from(InvalidField::new(
                        "visibility",
                        "must be public, unlisted or private",
                    ))
                    .into());
                }
            },
        };
        let video = self.videos.update(caller, id, changes).await?;
        Ok(Response::new(to_message(video)))
    }

    async fn delete_video(
        &self,
        request: Request<DeleteVideoRequest>,
    ) -> Answer<DeleteVideoResponse> {
        let caller = Caller::require_user(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        self.videos.delete(caller, id).await?;
        Ok(Response::new(DeleteVideoResponse {}))
    }

    async fn batch_get_videos(
        &self,
        request: Request<BatchGetVideosRequest>,
    ) -> Answer<BatchGetVideosResponse> {
        let caller = Caller::of(&request).user_id();
        let ids = platform::field::parse_uuids("ids", &request.get_ref().ids, MAX_BATCH)
            .map_err(VideoError::from)?;
        let videos = self.videos.batch(caller, &ids).await?;
        Ok(Response::new(BatchGetVideosResponse {
            videos: videos.into_iter().map(bare).collect(),
        }))
    }

    async fn list_feed_videos(
        &self,
        request: Request<ListFeedVideosRequest>,
    ) -> Answer<ListFeedVideosResponse> {
        let caller = Caller::of(&request).user_id();
        let ListFeedVideosRequest {
            owner_ids,
            before_created_at,
            before_id,
            limit,
            shared_ids,
        } = request.into_inner();
        let shared_ids = platform::field::parse_uuids("shared_ids", &shared_ids, MAX_BATCH)
            .map_err(VideoError::from)?;
        let owners = platform::field::parse_uuids("owner_ids", &owner_ids, MAX_FEED_OWNERS)
            .map_err(VideoError::from)?;
        let before = match before_created_at {
            None => None,
            Some(t) => Some(Cursor {
                created_at: proto::serde_ext::from_timestamp(&t)
                    .filter(|t| (1970..=9999).contains(&chrono::Datelike::year(t)))
                    .ok_or_else(|| {
                        VideoError::from(InvalidField::new(
                            "before_created_at",
                            "is not a time this service can compare",
                        ))
                    })?,
                id: parse_id("before_id", &before_id)?,
            }),
        };
        let (videos, shared) = tokio::try_join!(
            self.videos.feed_videos(&owners, before, limit),
            self.videos.batch(caller, &shared_ids)
        )?;
        Ok(Response::new(ListFeedVideosResponse {
            videos: videos.into_iter().map(bare).collect(),
            shared: shared.into_iter().map(bare).collect(),
        }))
    }

    async fn list_videos(&self, request: Request<ListVideosRequest>) -> Answer<ListVideosResponse> {
        let ListVideosRequest {
            page_size,
            page_token,
        } = request.into_inner();
        let (size, cursor) = parse_request(page_size, &page_token).map_err(VideoError::from)?;
        let (videos, next) = self.videos.public_page(size, cursor).await?;
        Ok(Response::new(self.page(videos, next).await))
    }

    async fn list_user_videos(
        &self,
        request: Request<ListUserVideosRequest>,
    ) -> Answer<ListVideosResponse> {
        let caller = Caller::of(&request).user_id();
        let ListUserVideosRequest {
            owner_id,
            page_size,
            page_token,
        } = request.into_inner();
        let owner = parse_id("owner_id", &owner_id)?;
        let (size, cursor) = parse_request(page_size, &page_token).map_err(VideoError::from)?;
        let (videos, next) = self.videos.owner_page(caller, owner, size, cursor).await?;
        Ok(Response::new(self.page(videos, next).await))
    }

    async fn upload_video(
        &self,
        request: Request<Streaming<UploadVideoRequest>>,
    ) -> Answer<UploadVideoResponse> {
        let owner = Caller::require_user(&request)?;
        let mut stream = request.into_inner();
        let metadata = match stream.next().await {
            Some(Ok(UploadVideoRequest {
                part: Some(Part::Metadata(metadata)),
            })) => metadata,
            Some(Ok(_)) | None => {
                return Err(VideoError::from(InvalidField::new(
                    "metadata",
                    "an upload starts with its metadata",
                ))
                .into());
            }
            Some(Err(status)) => return Err(status),
        };
        let upload = upload_request(metadata)?;
        // The rest of the stream is the file; a second metadata message is a broken client.
        let chunks = stream.map(|message| match message {
            Ok(UploadVideoRequest {
                part: Some(Part::Chunk(bytes)),
            }) => Ok(bytes),
            Ok(_) => Err("the metadata came twice".to_owned()),
            Err(status) => Err(status.message().to_owned()),
        });
        let done = self.videos.upload(owner, upload, Box::pin(chunks)).await?;
        Ok(Response::new(uploaded(done)))
    }

    async fn create_upload(&self, request: Request<CreateUploadRequest>) -> Answer<CreatedUpload> {
        let owner = Caller::require_user(&request)?;
        let CreateUploadRequest {
            title,
            description,
            visibility,
            size_bytes,
        } = request.into_inner();
        let upload = upload_fields(&title, &description, visibility, size_bytes)?;
        let DirectUpload {
            video_id,
            upload_id,
            part_size,
            parts,
            expires_at,
        } = self.videos.create_upload(owner, upload).await?;
        Ok(Response::new(CreatedUpload {
            video_id: video_id.to_string(),
            upload_id,
            part_size,
            parts: parts
                .into_iter()
                .map(|(part_number, url)| PartUrl { part_number, url })
                .collect(),
            expires_at: Some(to_timestamp(expires_at)),
        }))
    }

    async fn complete_upload(
        &self,
        request: Request<CompleteUploadRequest>,
    ) -> Answer<UploadVideoResponse> {
        let owner = Caller::require_user(&request)?;
        let CompleteUploadRequest { video_id, parts } = request.into_inner();
        let video_id = parse_id("video_id", &video_id)?;
        let parts = parts
            .into_iter()
            .map(|CompletedPart { part_number, etag }| {
                i32::try_from(part_number)
                    .map(|n| (n, etag))
                    .map_err(|_| VideoError::from(InvalidField::new("parts", "bad part number")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let done = self.videos.complete_upload(owner, video_id, parts).await?;
        Ok(Response::new(uploaded(done)))
    }
}
