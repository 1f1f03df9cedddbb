//! video-service and engagement-service, as payments uses them: who owns a video (in
//! batches of 100), and every video's engagement totals (in pages of 500).

use std::sync::Arc;

use platform::retry::{RetryBudget, idempotent};
use std::collections::HashMap;

use platform::grpc::TracedChannel;
use proto::engagement::v1::ListVideoTotalsRequest;
use proto::engagement::v1::engagement_service_client::EngagementServiceClient;
use proto::video::v1::BatchGetVideosRequest;
use proto::video::v1::video_service_client::VideoServiceClient;
use uuid::Uuid;

use crate::error::PaymentsError;

/// Ids one BatchGetVideos call takes.
const BATCH: usize = 100;

/// video-service and engagement-service, as payments-service reads them; a read that found
/// its peer UNAVAILABLE is retried within the process's retry budget (`platform::retry`).
#[derive(Clone)]
pub struct Peers {
    videos: VideoServiceClient<TracedChannel>,
    engagement: EngagementServiceClient<TracedChannel>,
    retries: Arc<RetryBudget>,
}

impl Peers {
    pub fn new(videos: TracedChannel, engagement: TracedChannel) -> Self {
        Self {
            videos: VideoServiceClient::new(videos),
            engagement: EngagementServiceClient::new(engagement),
            retries: Arc::new(RetryBudget::default()),
        }
    }

    /// The owners of the public and unlisted videos among `ids` (private and deleted ones
    /// are left out), one call per 100 ids.
    pub async fn owners(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Uuid>, PaymentsError> {
        let mut owners = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(BATCH) {
            let reply = idempotent(&self.retries, "video-service", || {
                let mut videos = self.videos.clone();
                let request = BatchGetVideosRequest {
                    ids: chunk.iter().map(Uuid::to_string).collect(),
                };
                async move { videos.batch_get_videos(request).await }
            })
            .await
            .map_err(PaymentsError::Upstream)?;
            for video in reply.into_inner().videos {
                if let (Ok(id), Ok(owner)) =
                    (Uuid::parse_str(&video.id), Uuid::parse_str(&video.owner_id))
                {
                    owners.insert(id, owner);
                }
            }
        }
        Ok(owners)
    }

    /// Every video's total views and watch seconds.
    pub async fn video_totals(&self) -> Result<Vec<(Uuid, i64, f64)>, PaymentsError> {
        let mut totals = Vec::new();
        let mut token = String::new();
        loop {
            let reply = idempotent(&self.retries, "engagement-service", || {
                let mut engagement = self.engagement.clone();
                let request = ListVideoTotalsRequest {
                    page_size: 500,
                    page_token: token.clone(),
                };
                async move { engagement.list_video_totals(request).await }
            })
            .await
            .map_err(PaymentsError::Upstream)?
            .into_inner();
            for v in reply.videos {
                if let Ok(id) = Uuid::parse_str(&v.video_id) {
                    totals.push((
                        id,
                        i64::try_from(v.views).unwrap_or(i64::MAX),
                        v.watch_seconds,
                    ));
                }
            }
            if reply.next_page_token.is_empty() {
                return Ok(totals);
            }
            token = reply.next_page_token;
        }
    }
}
