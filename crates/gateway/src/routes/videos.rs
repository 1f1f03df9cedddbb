use actix_web::{HttpResponse, web};
use proto::common::v1::VideoStats;
use proto::engagement::v1::GetVideoStatsRequest;
use proto::video::v1::{GetVideoRequest, ListVideosRequest, Video};
use serde::Serialize;

use super::{PageParams, parse_id};
use crate::Clients;
use crate::error::ApiError;

#[derive(Debug, Serialize)]
struct VideoWithStats {
    #[serde(flatten)]
    video: Video,
    /// `null` when the counts could not be fetched.
    stats: Option<VideoStats>,
}

#[derive(Debug, Serialize)]
struct VideoPage {
    videos: Vec<Video>,
    next_cursor: Option<String>,
}

pub async fn list_videos(
    clients: web::Data<Clients>,
    params: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let (page_size, page_token) = params.into_inner().into_request()?;
    let reply = clients
        .videos
        .clone()
        .list_videos(ListVideosRequest {
            page_size,
            page_token,
        })
        .await
        .map_err(|s| super::page_error("video-service", &s))?
        .into_inner();
    Ok(HttpResponse::Ok().json(VideoPage {
        videos: reply.videos,
        next_cursor: Some(reply.next_page_token).filter(|t| !t.is_empty()),
    }))
}

pub async fn get_video(
    clients: web::Data<Clients>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id("id", &path)?;
    let reply = clients
        .videos
        .clone()
        .get_video(GetVideoRequest { id: id.to_string() })
        .await
        .map_err(|s| ApiError::from_status("video-service", &s))?
        .into_inner();
    let video = reply.video.ok_or_else(|| {
        ApiError::from_status("video-service", &tonic::Status::internal("empty reply"))
    })?;
    Ok(HttpResponse::Ok().json(VideoWithStats {
        video,
        stats: reply.stats,
    }))
}

pub async fn get_video_stats(
    clients: web::Data<Clients>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id("id", &path)?;
    let reply = clients
        .engagement
        .clone()
        .get_video_stats(GetVideoStatsRequest {
            video_id: id.to_string(),
        })
        .await
        .map_err(|s| ApiError::from_status("engagement-service", &s))?
        .into_inner();
    Ok(HttpResponse::Ok().json(reply.stats.unwrap_or_default()))
}
