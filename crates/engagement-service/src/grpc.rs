//! The tonic service: translation between protobuf and the store, nothing else.

use platform::identity::Caller;
use proto::engagement::v1::engagement_service_server::EngagementService;
use proto::engagement::v1::{
    DeleteVideoStatsRequest, DeleteVideoStatsResponse, GetVideoStatsRequest, GetVideoStatsResponse,
};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::store::Store;

pub struct EngagementApi {
    store: Store,
}

impl EngagementApi {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

fn parse_uuid(field: &str, raw: &str) -> Result<Uuid, Status> {
    Uuid::parse_str(raw).map_err(|_| {
        platform::grpc::invalid_field(field, format!("{field} must be a UUID, got `{raw}`"))
    })
}

#[tonic::async_trait]
impl EngagementService for EngagementApi {
    async fn get_video_stats(
        &self,
        request: Request<GetVideoStatsRequest>,
    ) -> Result<Response<GetVideoStatsResponse>, Status> {
        let video_id = parse_uuid("video_id", &request.get_ref().video_id)?;
        let stats = self.store.video_stats(video_id).await?;
        let crate::store::VideoStats { views, likes } = stats;
        Ok(Response::new(GetVideoStatsResponse {
            video_id: video_id.to_string(),
            stats: Some(proto::common::v1::VideoStats { views, likes }),
        }))
    }

    async fn delete_video_stats(
        &self,
        request: Request<DeleteVideoStatsRequest>,
    ) -> Result<Response<DeleteVideoStatsResponse>, Status> {
        // Videos belong to video-service: only it says when one is gone.
        if !Caller::issued_by(&request, "video-service") {
            return Err(Status::permission_denied(
                "only video-service may delete a video's counts",
            ));
        }
        let video_id = parse_uuid("video_id", &request.get_ref().video_id)?;
        self.store.delete_video_stats(video_id).await?;
        Ok(Response::new(DeleteVideoStatsResponse {}))
    }
}
