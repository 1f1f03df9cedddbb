//! video-service and engagement-service, as payments uses them: who owns a video (in
//! batches of 100), and every video's engagement totals (in pages of 500).

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

#[derive(Clone)]
pub struct Peers {
    videos: VideoServiceClient<TracedChannel>,
    engagement: EngagementServiceClient<TracedChannel>,
}

impl Peers {
    pub fn new(videos: TracedChannel, engagement: TracedChannel) -> Self {
        Self {
            videos: VideoServiceClient::new(videos),
            engagement: EngagementServiceClient::new(engagement),
        }
    }

    /// The owners of the public and unlisted videos among `ids` (private and deleted ones
    /// are left out), one call per 100 ids.
    pub async fn owners(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Uuid>, PaymentsError> {
        let mut owners = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(BATCH) {
            let reply = self
                .videos
                .clone()
                .batch_get_videos(BatchGetVideosRequest {
                    ids: chunk.iter().map(Uuid::to_string).collect(),
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
            let reply = self
                .engagement
                .clone()
                .list_video_totals(ListVideoTotalsRequest {
                    page_size: 500,
                    page_token: token,
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
