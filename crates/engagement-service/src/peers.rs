//! user-service and video-service, as engagement uses them: one batched call per page,
//! never one per item, each made as the caller so visibility is decided where the videos
//! live.

use std::sync::Arc;

use platform::retry::{RetryBudget, idempotent};
use std::collections::HashMap;

use platform::grpc::TracedChannel;
use platform::identity::Caller;
use platform::pagination::Cursor;
use proto::engagement::v1::Author;
use proto::user::v1::user_service_client::UserServiceClient;
use proto::user::v1::{BatchGetProfilesRequest, ListAllFollowingRequest, Profile};
use proto::video::v1::video_service_client::VideoServiceClient;
use proto::video::v1::{BatchGetVideosRequest, ListFeedVideosRequest, Video};
use uuid::Uuid;

use crate::error::EngagementError;

const USERS: &str = "user-service";
const VIDEOS: &str = "video-service";

/// What engagement needs to know of a video, parsed once from video-service's answer.
#[derive(Debug, Clone)]
pub struct VideoFacts {
    pub owner: Uuid,
    pub ready: bool,
    pub public: bool,
    pub duration_seconds: u32,
    pub message: Video,
}

impl VideoFacts {
    fn of(message: Video) -> Option<(Uuid, Self)> {
        let id = Uuid::parse_str(&message.id).ok()?;
        let owner = Uuid::parse_str(&message.owner_id).ok()?;
        Some((
            id,
            Self {
                owner,
                ready: message.status() == proto::video::v1::VideoStatus::Ready,
                public: message.visibility() == proto::video::v1::Visibility::Public,
                duration_seconds: message.duration_seconds,
                message,
            },
        ))
    }

    /// Whether `caller` may see this video in a list of engagement's (comments, posts):
    /// ready ones to everyone who may see them at all, unfinished ones to their owner.
    pub fn listed_for(&self, caller: Option<Uuid>) -> bool {
        self.ready || caller == Some(self.owner)
    }
}

fn author(p: Profile) -> Option<(Uuid, Author)> {
    let id = Uuid::parse_str(&p.id).ok()?;
    Some((
        id,
        Author {
            id: p.id,
            username: p.username,
            display_name: p.display_name,
        },
    ))
}

/// user-service and video-service, as engagement-service reads them. Every call here is
/// a read: one that found its peer UNAVAILABLE is retried within the process's retry
/// budget (`platform::retry`).
#[derive(Clone)]
pub struct Peers {
    users: UserServiceClient<TracedChannel>,
    videos: VideoServiceClient<TracedChannel>,
    retries: Arc<RetryBudget>,
}

impl Peers {
    pub fn new(users: TracedChannel, videos: TracedChannel) -> Self {
        Self {
            users: UserServiceClient::new(users),
            videos: VideoServiceClient::new(videos),
            retries: Arc::new(RetryBudget::default()),
        }
    }

    /// Authors of `ids` that still exist, in one call (none for no ids).
    pub async fn authors(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Author>, EngagementError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let reply = idempotent(&self.retries, USERS, || {
            let mut users = self.users.clone();
            let request = BatchGetProfilesRequest {
                ids: ids.iter().map(Uuid::to_string).collect(),
            };
            async move { users.batch_get_profiles(request).await }
        })
        .await
        .map_err(|s| EngagementError::upstream(USERS, &s))?;
        Ok(reply
            .into_inner()
            .profiles
            .into_iter()
            .filter_map(author)
            .collect())
    }

    /// Everyone `user` follows (up to user-service's bound), with their names.
    pub async fn following(&self, user: Uuid) -> Result<Vec<(Uuid, Author)>, EngagementError> {
        let reply = idempotent(&self.retries, USERS, || {
            let mut users = self.users.clone();
            let request = ListAllFollowingRequest {
                user_id: user.to_string(),
                limit: 0,
            };
            async move { users.list_all_following(request).await }
        })
        .await
        .map_err(|s| EngagementError::upstream(USERS, &s))?;
        Ok(reply
            .into_inner()
            .followees
            .into_iter()
            .filter_map(|f| {
                let id = Uuid::parse_str(&f.id).ok()?;
                Some((
                    id,
                    Author {
                        id: f.id,
                        username: f.username,
                        display_name: f.display_name,
                    },
                ))
            })
            .collect())
    }

    /// The videos of `ids` that `caller` may see, in one call (none for no ids).
    pub async fn videos(
        &self,
        caller: Caller,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, VideoFacts>, EngagementError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let reply = idempotent(&self.retries, VIDEOS, || {
            let mut videos = self.videos.clone();
            let request = caller.attach(BatchGetVideosRequest {
                ids: ids.iter().map(Uuid::to_string).collect(),
            });
            async move { videos.batch_get_videos(request).await }
        })
        .await
        .map_err(|s| EngagementError::upstream(VIDEOS, &s))?;
        Ok(reply
            .into_inner()
            .videos
            .into_iter()
            .filter_map(VideoFacts::of)
            .collect())
    }

    /// One video `caller` may see, or NOT_FOUND.
    pub async fn video(&self, caller: Caller, id: Uuid) -> Result<VideoFacts, EngagementError> {
        self.videos(caller, &[id])
            .await?
            .remove(&id)
            .ok_or_else(|| EngagementError::not_found("video", id))
    }

    /// Ready public videos of `owners`, newest first, strictly before `before`; and those
    /// of `shared` the caller may see. One call.
    pub async fn feed_videos(
        &self,
        caller: Caller,
        owners: &[Uuid],
        before: Option<Cursor>,
        limit: u32,
        shared: &[Uuid],
    ) -> Result<(Vec<Video>, HashMap<Uuid, VideoFacts>), EngagementError> {
        if owners.is_empty() {
            return Ok((Vec::new(), HashMap::new()));
        }
        let reply = idempotent(&self.retries, VIDEOS, || {
            let mut videos = self.videos.clone();
            let request = caller.attach(ListFeedVideosRequest {
                owner_ids: owners.iter().map(Uuid::to_string).collect(),
                before_created_at: before.map(|c| proto::serde_ext::to_timestamp(c.created_at)),
                before_id: before.map(|c| c.id.to_string()).unwrap_or_default(),
                limit,
                shared_ids: shared.iter().map(Uuid::to_string).collect(),
            });
            async move { videos.list_feed_videos(request).await }
        })
        .await
        .map_err(|s| EngagementError::upstream(VIDEOS, &s))?
        .into_inner();
        Ok((
            reply.videos,
            reply
                .shared
                .into_iter()
                .filter_map(VideoFacts::of)
                .collect(),
        ))
    }
}
