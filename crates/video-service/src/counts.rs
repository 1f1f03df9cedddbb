//! engagement-service, as video-service uses it: the counts of a video, and forgetting
//! them when the video is deleted.

use platform::grpc::TracedChannel;
use proto::common::v1::VideoStats;
use proto::engagement::v1::engagement_service_client::EngagementServiceClient;
use proto::engagement::v1::{
    BatchGetVideoStatsRequest, DeleteVideoStatsRequest, GetVideoStatsRequest,
};
use std::collections::HashMap;
use uuid::Uuid;

#[derive(Clone)]
pub struct Counts(EngagementServiceClient<TracedChannel>);

impl Counts {
    pub fn new(channel: TracedChannel) -> Self {
        Self(EngagementServiceClient::new(channel))
    }

    /// A video's counts; `None` when engagement-service could not say (the video is still
    /// shown, without them, rather than failing the whole page).
    pub async fn of(&self, video: Uuid) -> Option<VideoStats> {
        match self
            .0
            .clone()
            .get_video_stats(GetVideoStatsRequest {
                video_id: video.to_string(),
            })
            .await
        {
            Ok(response) => response.into_inner().stats,
            Err(status) => {
                tracing::warn!(video_id = %video, code = ?status.code(), error = status.message(), "video counts unavailable");
                None
            }
        }
    }

    /// The counts of a page of videos in one call; empty when engagement-service could
    /// not say.
    pub async fn of_many(&self, videos: &[Uuid]) -> HashMap<String, VideoStats> {
        if videos.is_empty() {
            return HashMap::new();
        }
        match self
            .0
            .clone()
            .batch_get_video_stats(BatchGetVideoStatsRequest {
                video_ids: videos.iter().map(Uuid::to_string).collect(),
            })
            .await
        {
            Ok(response) => response.into_inner().stats,
            Err(status) => {
                tracing::warn!(videos = videos.len(), code = ?status.code(), error = status.message(), "video counts unavailable");
                HashMap::new()
            }
        }
    }

    /// Forgets a deleted video's counts.
    pub async fn forget(&self, video: Uuid) -> Result<(), String> {
        self.0
            .clone()
            .delete_video_stats(DeleteVideoStatsRequest {
                video_id: video.to_string(),
            })
            .await
            .map(|_| ())
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
    }
}
