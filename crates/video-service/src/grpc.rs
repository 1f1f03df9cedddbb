//! The tonic service: translation between protobuf and the store, nothing else.

use platform::grpc::TracedChannel;
use proto::engagement::v1::GetVideoStatsRequest;
use proto::engagement::v1::engagement_service_client::EngagementServiceClient;
use proto::serde_ext::to_timestamp;
use proto::video::v1::video_service_server::VideoService;
use proto::video::v1::{
    GetVideoRequest, GetVideoResponse, ListVideosRequest, ListVideosResponse, Video as VideoMsg,
    VideoStatus as StatusMsg,
};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::domain::VideoStatus;
use crate::store::{Store, Video};
use platform::pagination::parse_request;

pub struct VideoApi {
    store: Store,
    engagement: EngagementServiceClient<TracedChannel>,
}

impl VideoApi {
    pub fn new(store: Store, engagement: TracedChannel) -> Self {
        Self {
            store,
            engagement: EngagementServiceClient::new(engagement),
        }
    }
}

fn to_message(v: Video) -> VideoMsg {
    let Video {
        id,
        owner_id,
        title,
        description,
        duration_seconds,
        status,
        tags,
        created_at,
    } = v;
    let status = match status {
        VideoStatus::Processing => StatusMsg::Processing,
        VideoStatus::Published => StatusMsg::Published,
        VideoStatus::Failed => StatusMsg::Failed,
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
    }
}

#[tonic::async_trait]
impl VideoService for VideoApi {
    async fn get_video(
        &self,
        request: Request<GetVideoRequest>,
    ) -> Result<Response<GetVideoResponse>, Status> {
        let raw = &request.get_ref().id;
        let id = Uuid::parse_str(raw).map_err(|_| {
            platform::grpc::invalid_field("id", format!("id must be a UUID, got `{raw}`"))
        })?;
        // The row and the counts are independent: ask for both at once.
        let mut engagement = self.engagement.clone();
        let (video, counts) = tokio::join!(
            self.store.video(id),
            engagement.get_video_stats(GetVideoStatsRequest {
                video_id: id.to_string(),
            })
        );
        let video = video?.ok_or_else(|| Status::not_found(format!("no video with id {id}")))?;
        // Counts are secondary: when engagement-service is down the video is still shown,
        // without them, rather than failing the whole page.
        let stats = match counts {
            Ok(response) => response.into_inner().stats,
            Err(status) => {
                tracing::warn!(video_id = %id, code = ?status.code(), error = status.message(), "video counts unavailable");
                None
            }
        };
        Ok(Response::new(GetVideoResponse {
            video: Some(to_message(video)),
            stats,
        }))
    }

    async fn list_videos(
        &self,
        request: Request<ListVideosRequest>,
    ) -> Result<Response<ListVideosResponse>, Status> {
        let request = request.into_inner();
        let (size, cursor) = parse_request(request.page_size, &request.page_token)?;
        let (videos, next) = self.store.published_page(size, cursor).await?;
        Ok(Response::new(ListVideosResponse {
            videos: videos.into_iter().map(to_message).collect(),
            next_page_token: next.map(|c| c.encode()).unwrap_or_default(),
        }))
    }
}
