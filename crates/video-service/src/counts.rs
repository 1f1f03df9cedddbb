//! engagement-service, as video-service uses it: the counts of a video, and forgetting
//! them when the video is deleted.

use platform::grpc::TracedChannel;
use platform::retry::{RetryBudget, idempotent};
use proto::common::v1::VideoStats;
use proto::engagement::v1::engagement_service_client::EngagementServiceClient;
use proto::engagement::v1::{
    BatchGetVideoStatsRequest, DeleteVideoStatsRequest, GetVideoStatsRequest,
};
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// Reads that found engagement-service UNAVAILABLE are retried within the process's retry
/// budget (`platform::retry`); forgetting is not a read and is not retried here.
#[derive(Clone)]
pub struct Counts {
    client: EngagementServiceClient<TracedChannel>,
    retries: Arc<RetryBudget>,
}

const ENGAGEMENT: &str = "engagement-service";

impl Counts {
    pub fn new(channel: TracedChannel) -> Self {
        Self {
            client: EngagementServiceClient::new(channel),
            retries: Arc::new(RetryBudget::default()),
        }
    }

    /// A video's counts; `None` when engagement-service could not say (the video is still
    /// shown, without them, rather than failing the whole page).
    pub async fn of(&self, video: Uuid) -> Option<VideoStats> {
        let read = idempotent(&self.retries, ENGAGEMENT, || {
            let mut client = self.client.clone();
            let request = GetVideoStatsRequest {
                video_id: video.to_string(),
            };
            async move { client.get_video_stats(request).await }
        });
        match read.await {
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
        let read = idempotent(&self.retries, ENGAGEMENT, || {
            let mut client = self.client.clone();
            let request = BatchGetVideoStatsRequest {
                video_ids: videos.iter().map(Uuid::to_string).collect(),
            };
            async move { client.batch_get_video_stats(request).await }
        });
        match read.await {
            Ok(response) => response.into_inner().stats,
            Err(status) => {
                tracing::warn!(videos = videos.len(), code = ?status.code(), error = status.message(), "video counts unavailable");
                HashMap::new()
            }
        }
    }

    /// Forgets a deleted video's counts.
    pub async fn forget(&self, video: Uuid) -> Result<(), String> {
        self.client
            .clone()
            .delete_video_stats(DeleteVideoStatsRequest {
                video_id: video.to_string(),
            })
            .await
            .map(|_| ())
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
    }
}
