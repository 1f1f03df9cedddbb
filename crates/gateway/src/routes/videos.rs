use actix_multipart::{Field, Multipart};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use futures::StreamExt;
use proto::common::v1::VideoStats;
use proto::video::v1::upload_video_request::Part;
use proto::video::v1::{
    CompleteUploadRequest, CompletedPart, CreateUploadRequest, DeleteVideoRequest,
    GetPlaybackRequest, GetVideoRequest, ListUserVideosRequest, ListVideosRequest,
    ListVideosResponse, UpdateVideoRequest, UploadMetadata, UploadVideoRequest,
    UploadVideoResponse, Video, Visibility,
};
use serde::{Deserialize, Serialize};

use proto::serde_ext::{VideoStatusName, VisibilityName};
use proto::video::v1::{CreatedUpload, Playback};

use super::{PageParams, parse_id};
use crate::cache::VideoCache;
use crate::edge::{Authenticated, Viewer};
use crate::error::{ApiError, ErrorBody};
use crate::{Clients, UploadSettings};

const VIDEOS: &str = "video-service";

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VideoWithStats {
    #[serde(flatten)]
    video: Video,
    /// `null` when the counts could not be fetched.
    stats: Option<VideoStats>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VideoPage {
    videos: Vec<VideoWithStats>,
    next_cursor: Option<String>,
}

impl From<ListVideosResponse> for VideoPage {
    fn from(reply: ListVideosResponse) -> Self {
        let ListVideosResponse {
            videos,
            next_page_token,
            mut stats,
        } = reply;
        Self {
            videos: videos
                .into_iter()
                .map(|video| VideoWithStats {
                    stats: stats.remove(&video.id),
                    video,
                })
                .collect(),
            next_cursor: Some(next_page_token).filter(|t| !t.is_empty()),
        }
    }
}

/// Ready public videos, newest first.
#[utoipa::path(get, path = "/api/v1/videos", tag = "videos", params(PageParams),
    responses((status = 200, description = "A page of videos", body = VideoPage)))]
pub async fn list_videos(
    clients: web::Data<Clients>,
    params: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let (page_size, page_token) = params.into_inner().into_request()?;
    let reply = platform::retry::idempotent(&clients.retries, VIDEOS, || {
        let mut client = clients.videos.clone();
        let request = ListVideosRequest {
            page_size,
            page_token: page_token.clone(),
        };
        async move { client.list_videos(request).await }
    })
    .await
    .map_err(|s| super::page_error(VIDEOS, &s))?
    .into_inner();
    Ok(HttpResponse::Ok().json(VideoPage::from(reply)))
}

/// `GET /users/{id}/videos`: all of them to their owner, the ready public ones to others.
#[utoipa::path(get, path = "/api/v1/users/{id}/videos", tag = "videos",
    security((), ("bearer" = [])), params(("id" = Uuid, Path, description = "The owner's id"), PageParams),
    responses((status = 200, description = "A page of videos", body = VideoPage)))]
pub async fn list_user_videos(
    viewer: Viewer,
    clients: web::Data<Clients>,
    path: web::Path<String>,
    params: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let owner = parse_id("id", &path)?;
    let (page_size, page_token) = params.into_inner().into_request()?;
    let reply = clients
        .videos
        .clone()
        .list_user_videos(viewer.request(ListUserVideosRequest {
            owner_id: owner.to_string(),
            page_size,
            page_token,
        }))
        .await
        .map_err(|s| super::page_error(VIDEOS, &s))?
        .into_inner();
    Ok(HttpResponse::Ok().json(VideoPage::from(reply)))
}

/// A video and its counts (a private video is its owner's only).
#[utoipa::path(get, path = "/api/v1/videos/{id}", tag = "videos", security((), ("bearer" = [])),
    params(("id" = Uuid, Path, description = "The video's id")), responses((status = 200, description = "The video", body = VideoWithStats)))]
pub async fn get_video(
    viewer: Viewer,
    clients: web::Data<Clients>,
    cache: web::Data<VideoCache>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id("id", &path)?;
    let ticket = match cache.get(&id) {
        Ok((body, refresh)) => {
            if let Some(ticket) = refresh {
                // Cached answers are anyone's: refreshed as nobody, off this request.
                let (clients, cache) = (clients.clone(), cache.clone());
                actix_web::rt::spawn(async move {
                    match fetch_video(&clients, &cache, &Viewer(None), id, ticket).await {
                        Ok(_) => {}
                        Err(e)
                            if actix_web::ResponseError::status_code(&e)
                                == StatusCode::NOT_FOUND =>
                        {
                            cache.forget(&id);
                        }
                        Err(e) => {
                            tracing::debug!(video_id = %id, error = %e, "cached video not refreshed")
                        }
                    }
                });
            }
            return Ok(json_body(body));
        }
        Err(ticket) => ticket,
    };
    fetch_video(&clients, &cache, &viewer, id, ticket)
        .await
        .map(json_body)
}

/// Asks video-service for the video as `viewer`, and keeps the answer when it is anyone's
/// (not private, with its counts) and nothing was forgotten since `ticket`.
async fn fetch_video(
    clients: &Clients,
    cache: &VideoCache,
    viewer: &Viewer,
    id: uuid::Uuid,
    ticket: crate::cache::Ticket,
) -> Result<web::Bytes, ApiError> {
    let reply = platform::retry::idempotent(&clients.retries, VIDEOS, || {
        let mut client = clients.videos.clone();
        let request = viewer.request(GetVideoRequest { id: id.to_string() });
        async move { client.get_video(request).await }
    })
    .await
    .map_err(|s| ApiError::from_status(VIDEOS, &s))?
    .into_inner();
    let video = reply
        .video
        .ok_or_else(|| ApiError::from_status(VIDEOS, &tonic::Status::internal("empty reply")))?;
    // Anyone may see it, and the answer is whole: the same for every caller.
    let shared = video.visibility() != Visibility::Private && reply.stats.is_some();
    let body = serde_json::to_vec(&VideoWithStats {
        video,
        stats: reply.stats,
    })
    .map(web::Bytes::from)
    .map_err(|e| ApiError::from_status(VIDEOS, &tonic::Status::internal(e.to_string())))?;
    if shared {
        cache.put(ticket, id, body.clone());
    }
    Ok(body)
}

fn json_body(body: web::Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(actix_web::http::header::ContentType::json())
        .body(body)
}

/// `GET /videos/{id}/stats`: the counts of a video the caller may see (a private video's
/// counts are its owner's only, like the video).
#[utoipa::path(get, path = "/api/v1/videos/{id}/stats", tag = "videos", security((), ("bearer" = [])),
    params(("id" = Uuid, Path, description = "The video's id")), responses((status = 200, description = "Views, likes and comments", body = VideoStats)))]
pub async fn get_video_stats(
    viewer: Viewer,
    clients: web::Data<Clients>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id("id", &path)?;
    let reply = clients
        .videos
        .clone()
        .get_video(viewer.request(GetVideoRequest { id: id.to_string() }))
        .await
        .map_err(|s| ApiError::from_status(VIDEOS, &s))?
        .into_inner();
    match reply.stats {
        Some(stats) => Ok(HttpResponse::Ok().json(stats)),
        None => Err(ApiError::unavailable(
            "the counts are unavailable right now; try again shortly",
        )),
    }
}

/// Fields an upload form may have (title, description and visibility, once each, then file).
const MAX_FIELDS: usize = 4;

/// Bytes a multipart body adds around the file (boundaries, part headers, the text fields).
const MULTIPART_OVERHEAD: u64 = 64 * 1024;

fn too_large(max: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the file is larger than {max} bytes"),
    )
}

fn bad_multipart(e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("invalid multipart body: {e}"))
}

/// A text field, at most `max` bytes of UTF-8.
async fn text_field(field: &mut Field, name: &str, max: usize) -> Result<String, ApiError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.next().await {
        bytes.extend_from_slice(&chunk.map_err(bad_multipart)?);
        if bytes.len() > max {
            return Err(ApiError::bad_request(format!(
                "{name} must be at most {max} bytes"
            )));
        }
    }
    String::from_utf8(bytes).map_err(|_| ApiError::bad_request(format!("{name} must be UTF-8")))
}

/// `POST /videos`: `multipart/form-data` with `title`, optional `description` and
/// `visibility`, then `file`. The file is streamed to video-service as it arrives (a few
/// chunks in flight at most), never held whole.
#[utoipa::path(post, path = "/api/v1/videos", tag = "videos", security(("bearer" = [])),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 202, description = "Stored; processing is queued", body = UploadAccepted,
        headers(("Location" = String, description = "The video's URL")))))]
pub async fn upload_video(
    me: Authenticated,
    req: HttpRequest,
    clients: web::Data<Clients>,
    limits: web::Data<UploadSettings>,
    mut form: Multipart,
) -> Result<HttpResponse, ApiError> {
    let max = limits.max_size_bytes;
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max.saturating_add(MULTIPART_OVERHEAD)) {
        return Err(too_large(max));
    }
    let mut metadata = UploadMetadata {
        visibility: Visibility::Public as i32,
        declared_size: 0,
        ..UploadMetadata::default()
    };
    // Text fields before the file are few and small: a body of endless ones is refused.
    let mut fields = 0;
    while let Some(field) = form.next().await {
        let mut field = field.map_err(bad_multipart)?;
        fields += 1;
        if fields > MAX_FIELDS {
            return Err(ApiError::bad_request(format!(
                "at most {MAX_FIELDS} fields: title, description, visibility and file"
            )));
        }
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "title" => metadata.title = text_field(&mut field, "title", 1024).await?,
            "description" => {
                metadata.description = text_field(&mut field, "description", 32 * 1024).await?;
            }
            "visibility" => {
                let raw = text_field(&mut field, "visibility", 32).await?;
                metadata.visibility = visibility(&raw)? as i32;
            }
            "file" => {
                metadata.file_name = field
                    .content_disposition()
                    .and_then(|d| d.get_filename())
                    .unwrap_or_default()
                    .chars()
                    .take(255)
                    .collect();
                metadata.declared_size = declared.unwrap_or(0).saturating_sub(MULTIPART_OVERHEAD);
                let uploaded = stream_file(&me, &clients, metadata, field, max).await?;
                return Ok(accepted(uploaded));
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown field `{other}`: expected title, description, visibility and file"
                )));
            }
        }
    }
    Err(ApiError::bad_request(
        "file is required (send it after title, description and visibility)",
    ))
}

/// Streams `file` to video-service behind `metadata`. Past `max` bytes, or when the client
/// goes away, the call is dropped: video-service sees its stream fail and aborts the upload.
async fn stream_file(
    me: &Authenticated,
    clients: &Clients,
    metadata: UploadMetadata,
    mut file: Field,
    max: u64,
) -> Result<UploadVideoResponse, ApiError> {
    let (tx, rx) = tokio::sync::mpsc::channel::<UploadVideoRequest>(4);
    let first = UploadVideoRequest {
        part: Some(Part::Metadata(metadata)),
    };
    tx.send(first)
        .await
        .map_err(|_| ApiError::unavailable("the upload could not start"))?;
    let mut videos = clients.videos.clone();
    let call = videos.upload_video(me.request(tokio_stream::wrappers::ReceiverStream::new(rx)));
    tokio::pin!(call);
    let feed = async move {
        let mut sent: u64 = 0;
        while let Some(chunk) = file.next().await {
            let chunk = chunk.map_err(bad_multipart)?;
            sent += chunk.len() as u64;
            if sent > max {
                return Err(too_large(max));
            }
            let message = UploadVideoRequest {
                part: Some(Part::Chunk(chunk)),
            };
            if tx.send(message).await.is_err() {
                // video-service answered already (a refusal): that answer is the one.
                break;
            }
        }
        Ok(())
    };
    let answer = tokio::select! {
        fed = feed => {
            fed?;
            call.await
        }
        answer = &mut call => answer,
    };
    answer
        .map(tonic::Response::into_inner)
        .map_err(|s| ApiError::from_status(VIDEOS, &s))
}

/// `GET /videos/{id}/playback`: `{"url", "expires_at"}`, a presigned GET (ranges work).
#[utoipa::path(get, path = "/api/v1/videos/{id}/playback", tag = "videos", security((), ("bearer" = [])),
    params(("id" = Uuid, Path, description = "The video's id")),
    responses(
        (status = 200, description = "Where to stream it from", body = Playback),
        (status = 409, description = "The video is not ready yet", body = ErrorBody),
    ))]
pub async fn playback(
    viewer: Viewer,
    clients: web::Data<Clients>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id("id", &path)?;
    let playback = clients
        .videos
        .clone()
        .get_playback(viewer.request(GetPlaybackRequest { id: id.to_string() }))
        .await
        .map_err(|s| ApiError::from_status(VIDEOS, &s))?
        .into_inner();
    Ok(HttpResponse::Ok().json(playback))
}

/// `PATCH /videos/{id}`: any of title, description, visibility.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VideoChanges {
    title: Option<String>,
    description: Option<String>,
    #[schema(value_type = Option<VisibilityName>)]
    visibility: Option<String>,
}

fn visibility(raw: &str) -> Result<Visibility, ApiError> {
    match raw {
        "public" => Ok(Visibility::Public),
        "unlisted" => Ok(Visibility::Unlisted),
        "private" => Ok(Visibility::Private),
        _ => Err(ApiError::bad_request(format!(
            "visibility must be public, unlisted or private, got `{raw}`"
        ))),
    }
}

/// Changes a video's title, description or visibility (its owner only).
#[utoipa::path(patch, path = "/api/v1/videos/{id}", tag = "videos", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The video's id")), request_body = VideoChanges,
    responses((status = 200, description = "The video as changed", body = Video)))]
pub async fn update_video(
    me: Authenticated,
    clients: web::Data<Clients>,
    path: web::Path<String>,
    body: web::Json<VideoChanges>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id("id", &path)?;
    let VideoChanges {
        title,
        description,
        visibility: raw,
    } = body.into_inner();
    let visibility = raw
        .as_deref()
        .map(visibility)
        .transpose()?
        .unwrap_or(Visibility::Unspecified);
    let video = clients
        .videos
        .clone()
        .update_video(me.request(UpdateVideoRequest {
            id: id.to_string(),
            title,
            description,
            visibility: visibility as i32,
        }))
        .await
        .map_err(|s| ApiError::from_status(VIDEOS, &s))?
        .into_inner();
    Ok(HttpResponse::Ok().json(video))
}

/// Deletes a video, its file, its counts, likes and comments (its owner only).
#[utoipa::path(delete, path = "/api/v1/videos/{id}", tag = "videos", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The video's id")), responses((status = 204, description = "Deleted")))]
pub async fn delete_video(
    me: Authenticated,
    clients: web::Data<Clients>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id("id", &path)?;
    clients
        .videos
        .clone()
        .delete_video(me.request(DeleteVideoRequest { id: id.to_string() }))
        .await
        .map_err(|s| ApiError::from_status(VIDEOS, &s))?;
    Ok(HttpResponse::NoContent().finish())
}

/// An upload stored whole, its processing queued.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UploadAccepted {
    video_id: String,
    /// Always `uploaded` here: `GET /videos/{id}` follows it to `ready` or `failed`.
    #[schema(value_type = VideoStatusName)]
    status: &'static str,
    job_id: String,
}

/// 202 for an upload whose processing is queued.
fn accepted(uploaded: UploadVideoResponse) -> HttpResponse {
    let UploadVideoResponse {
        video_id,
        status: _,
        job_id,
    } = uploaded;
    HttpResponse::Accepted()
        .insert_header(("Location", format!("/api/v1/videos/{video_id}")))
        .json(UploadAccepted {
            video_id,
            status: "uploaded",
            job_id,
        })
}

/// The form of `POST /videos`, in this order: the file comes last.
#[derive(utoipa::ToSchema)]
#[expect(
    dead_code,
    reason = "describes the multipart form in the OpenAPI document; never built"
)]
pub struct UploadForm {
    /// At most 1024 bytes.
    title: String,
    /// At most 32 KiB.
    description: Option<String>,
    /// `public` when absent.
    visibility: Option<VisibilityName>,
    /// The video file (mp4, webm, mkv or mov).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// `POST /videos/uploads`: a direct upload of a large file.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUpload {
    title: String,
    #[serde(default)]
    description: String,
    /// `public` when absent.
    #[schema(value_type = Option<VisibilityName>)]
    visibility: Option<String>,
    size_bytes: u64,
}

#[utoipa::path(post, path = "/api/v1/videos/uploads", tag = "videos", security(("bearer" = [])),
    request_body = NewUpload,
    responses((status = 201, description = "Presigned part URLs to PUT the file to", body = CreatedUpload)))]
pub async fn create_upload(
    me: Authenticated,
    clients: web::Data<Clients>,
    limits: web::Data<UploadSettings>,
    body: web::Json<NewUpload>,
) -> Result<HttpResponse, ApiError> {
    let NewUpload {
        title,
        description,
        visibility: raw,
        size_bytes,
    } = body.into_inner();
    if size_bytes > limits.max_size_bytes {
        return Err(too_large(limits.max_size_bytes));
    }
    let visibility = raw
        .as_deref()
        .map(visibility)
        .transpose()?
        .unwrap_or(Visibility::Public);
    let created = clients
        .videos
        .clone()
        .create_upload(me.request(CreateUploadRequest {
            title,
            description,
            visibility: visibility as i32,
            size_bytes,
        }))
        .await
        .map_err(|s| ApiError::from_status(VIDEOS, &s))?
        .into_inner();
    Ok(HttpResponse::Created().json(created))
}

/// `POST /videos/{id}/complete`: `{"parts": [{"part_number", "etag"}]}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Completion {
    parts: Vec<PartEtag>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartEtag {
    part_number: u32,
    etag: String,
}

/// Finishes a direct upload once every part is stored.
#[utoipa::path(post, path = "/api/v1/videos/{id}/complete", tag = "videos", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The video's id")), request_body = Completion,
    responses(
        (status = 202, description = "Stored; processing is queued", body = UploadAccepted,
            headers(("Location" = String, description = "The video's URL"))),
        (status = 409, description = "The upload is not in a state to complete", body = ErrorBody),
    ))]
pub async fn complete_upload(
    me: Authenticated,
    clients: web::Data<Clients>,
    path: web::Path<String>,
    body: web::Json<Completion>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id("id", &path)?;
    let parts = body
        .into_inner()
        .parts
        .into_iter()
        .map(|PartEtag { part_number, etag }| CompletedPart { part_number, etag })
        .collect();
    let uploaded = clients
        .videos
        .clone()
        .complete_upload(me.request(CompleteUploadRequest {
            video_id: id.to_string(),
            parts,
        }))
        .await
        .map_err(|s| ApiError::from_status(VIDEOS, &s))?
        .into_inner();
    Ok(accepted(uploaded))
}
