//! The tonic adapter: parses protobuf into domain types, calls one use case, converts the
//! answer back. No rule lives here.

use platform::field::{parse_uuid, parse_uuids};
use platform::identity::Caller;
use platform::pagination::{Cursor, parse_request};
use proto::common::v1::VideoStats as StatsMsg;
use proto::engagement::v1::engagement_service_server::EngagementService;
use proto::engagement::v1::{
    BatchGetVideoStatsRequest, BatchGetVideoStatsResponse, Comment, CreateCommentRequest,
    CreatePostRequest, DeleteCommentRequest, DeleteCommentResponse, DeletePostRequest,
    DeletePostResponse, DeleteVideoStatsRequest, DeleteVideoStatsResponse, FeedItem as FeedItemMsg,
    ForgetUserRequest, ForgetUserResponse, GetFeedRequest, GetFeedResponse, GetPostRequest,
    GetTrendingRequest, GetTrendingResponse, GetVideoStatsRequest, GetVideoStatsResponse,
    ListCommentsRequest, ListCommentsResponse, ListPostsResponse, ListUserPostsRequest,
    ListVideoTotalsRequest, ListVideoTotalsResponse, Post, RecordViewRequest, RecordViewResponse,
    SetLikeRequest, SetLikeResponse, TargetType, TrendingVideo, VideoTotals, feed_item,
};
use proto::serde_ext::to_timestamp;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::app::{CommentView, Engagement, FeedItem, PostView, ViewRecorded};
use crate::domain::{InvalidField, MAX_COMMENT_CHARS, MAX_POST_CHARS, Target, Text, Viewer};
use crate::error::EngagementError;
use crate::store::VideoStats;

/// Videos whose counts one call asks for.
const MAX_BATCH: usize = 100;

pub struct EngagementApi {
    app: Engagement,
}

impl EngagementApi {
    pub fn new(app: Engagement) -> Self {
        Self { app }
    }
}

type Answer<T> = Result<Response<T>, Status>;

fn id(field: &'static str, raw: &str) -> Result<Uuid, EngagementError> {
    Ok(parse_uuid(field, raw)?)
}

fn optional_id(field: &'static str, raw: Option<&str>) -> Result<Option<Uuid>, EngagementError> {
    match raw {
        None | Some("") => Ok(None),
        Some(raw) => id(field, raw).map(Some),
    }
}

fn stats(s: VideoStats) -> StatsMsg {
    StatsMsg {
        views: s.views,
        likes: s.likes,
        comments: s.comments,
    }
}

fn comment(view: CommentView) -> Comment {
    let CommentView { comment, author } = view;
    Comment {
        id: comment.id.to_string(),
        video_id: comment.video_id.to_string(),
        parent_id: comment.parent_id.map(|p| p.to_string()),
        author,
        text: comment.body,
        created_at: Some(to_timestamp(comment.created_at)),
        likes: u64::try_from(comment.likes).unwrap_or(0),
        replies: u64::try_from(comment.replies).unwrap_or(0),
    }
}

fn post(view: PostView) -> Post {
    let PostView {
        post,
        author,
        video,
    } = view;
    Post {
        id: post.id.to_string(),
        author,
        text: post.body,
        video,
        created_at: Some(to_timestamp(post.created_at)),
        likes: u64::try_from(post.likes).unwrap_or(0),
    }
}

fn token(next: Option<Cursor>) -> String {
    next.map(|c| c.encode()).unwrap_or_default()
}

#[tonic::async_trait]
impl EngagementService for EngagementApi {
    async fn get_video_stats(
        &self,
        request: Request<GetVideoStatsRequest>,
    ) -> Answer<GetVideoStatsResponse> {
        let video = id("video_id", &request.get_ref().video_id)?;
        let counts = self.app.stats(video).await?;
        Ok(Response::new(GetVideoStatsResponse {
            video_id: video.to_string(),
            stats: Some(stats(counts)),
        }))
    }

    async fn batch_get_video_stats(
        &self,
        request: Request<BatchGetVideoStatsRequest>,
    ) -> Answer<BatchGetVideoStatsResponse> {
        let ids = parse_uuids("video_ids", &request.get_ref().video_ids, MAX_BATCH)
            .map_err(EngagementError::from)?;
        let counts = self.app.stats_many(&ids).await?;
        Ok(Response::new(BatchGetVideoStatsResponse {
            stats: counts
                .into_iter()
                .map(|(id, s)| (id.to_string(), stats(s)))
                .collect(),
        }))
    }

    async fn delete_video_stats(
        &self,
        request: Request<DeleteVideoStatsRequest>,
    ) -> Answer<DeleteVideoStatsResponse> {
        // Videos belong to video-service: only it says when one is gone.
        if !Caller::issued_by(&request, "video-service") {
            return Err(Status::permission_denied(
                "only video-service may delete a video's counts",
            ));
        }
        let video = id("video_id", &request.get_ref().video_id)?;
        self.app.forget_video(video).await?;
        Ok(Response::new(DeleteVideoStatsResponse {}))
    }

    async fn record_view(&self, request: Request<RecordViewRequest>) -> Answer<RecordViewResponse> {
        let caller = Caller::of(&request);
        let RecordViewRequest {
            video_id,
            viewer_key,
            watch_seconds,
        } = request.into_inner();
        let video = id("video_id", &video_id)?;
        let viewer = Viewer::parse(&viewer_key).map_err(EngagementError::from)?;
        let recorded = self
            .app
            .record_view(caller, video, viewer, watch_seconds)
            .await?;
        Ok(Response::new(match recorded {
            ViewRecorded::Counted => RecordViewResponse {
                counted: true,
                reason: String::new(),
            },
            ViewRecorded::NotCounted(reason) => RecordViewResponse {
                counted: false,
                reason: reason.to_owned(),
            },
        }))
    }

    async fn set_like(&self, request: Request<SetLikeRequest>) -> Answer<SetLikeResponse> {
        let me = Caller::require_user(&request)?;
        let SetLikeRequest {
            target_type,
            target_id,
            liked,
        } = request.into_inner();
        let target = match TargetType::try_from(target_type) {
            Ok(TargetType::Video) => Target::Video,
            Ok(TargetType::Post) => Target::Post,
            Ok(TargetType::Comment) => Target::Comment,
            _ => {
                return Err(EngagementError::from(InvalidField::new(
                    "target_type",
                    "must be video, post or comment",
                ))
                .into());
            }
        };
        let target_id = id("target_id", &target_id)?;
        let likes = self.app.set_like(me, target, target_id, liked).await?;
        Ok(Response::new(SetLikeResponse { liked, likes }))
    }

    async fn create_comment(&self, request: Request<CreateCommentRequest>) -> Answer<Comment> {
        let me = Caller::require_user(&request)?;
        let CreateCommentRequest {
            video_id,
            text,
            parent_id,
        } = request.into_inner();
        let video = id("video_id", &video_id)?;
        let text = Text::parse("text", &text, MAX_COMMENT_CHARS).map_err(EngagementError::from)?;
        let parent = optional_id("parent_id", parent_id.as_deref())?;
        let created = self.app.create_comment(me, video, text, parent).await?;
        Ok(Response::new(comment(created)))
    }

    async fn list_comments(
        &self,
        request: Request<ListCommentsRequest>,
    ) -> Answer<ListCommentsResponse> {
        let caller = Caller::of(&request);
        let ListCommentsRequest {
            video_id,
            parent_id,
            page_size,
            page_token,
        } = request.into_inner();
        let video = id("video_id", &video_id)?;
        let parent = optional_id("parent_id", parent_id.as_deref())?;
        let (size, cursor) =
            parse_request(page_size, &page_token).map_err(EngagementError::from)?;
        let (comments, next) = self
            .app
            .comments(caller, video, parent, size, cursor)
            .await?;
        Ok(Response::new(ListCommentsResponse {
            comments: comments.into_iter().map(comment).collect(),
            next_page_token: token(next),
        }))
    }

    async fn delete_comment(
        &self,
        request: Request<DeleteCommentRequest>,
    ) -> Answer<DeleteCommentResponse> {
        let me = Caller::require_user(&request)?;
        let comment = id("id", &request.get_ref().id)?;
        self.app.delete_comment(me, comment).await?;
        Ok(Response::new(DeleteCommentResponse {}))
    }

    async fn create_post(&self, request: Request<CreatePostRequest>) -> Answer<Post> {
        let me = Caller::require_user(&request)?;
        let CreatePostRequest { text, video_id } = request.into_inner();
        let text = Text::parse("text", &text, MAX_POST_CHARS).map_err(EngagementError::from)?;
        let video = optional_id("video_id", video_id.as_deref())?;
        let created = self.app.create_post(me, text, video).await?;
        Ok(Response::new(post(created)))
    }

    async fn get_post(&self, request: Request<GetPostRequest>) -> Answer<Post> {
        let caller = Caller::of(&request);
        let found = id("id", &request.get_ref().id)?;
        Ok(Response::new(post(self.app.post(caller, found).await?)))
    }

    async fn delete_post(&self, request: Request<DeletePostRequest>) -> Answer<DeletePostResponse> {
        let me = Caller::require_user(&request)?;
        let found = id("id", &request.get_ref().id)?;
        self.app.delete_post(me, found).await?;
        Ok(Response::new(DeletePostResponse {}))
    }

    async fn list_user_posts(
        &self,
        request: Request<ListUserPostsRequest>,
    ) -> Answer<ListPostsResponse> {
        let caller = Caller::of(&request);
        let ListUserPostsRequest {
            author_id,
            page_size,
            page_token,
        } = request.into_inner();
        let author = id("author_id", &author_id)?;
        let (size, cursor) =
            parse_request(page_size, &page_token).map_err(EngagementError::from)?;
        let (posts, next) = self.app.user_posts(caller, author, size, cursor).await?;
        Ok(Response::new(ListPostsResponse {
            posts: posts.into_iter().map(post).collect(),
            next_page_token: token(next),
        }))
    }

    async fn get_feed(&self, request: Request<GetFeedRequest>) -> Answer<GetFeedResponse> {
        let me = Caller::require_user(&request)?;
        let GetFeedRequest {
            page_size,
            page_token,
        } = request.into_inner();
        let (size, cursor) =
            parse_request(page_size, &page_token).map_err(EngagementError::from)?;
        let (items, next) = self.app.feed(me, size, cursor).await?;
        Ok(Response::new(GetFeedResponse {
            items: items
                .into_iter()
                .map(|item| match item {
                    FeedItem::Post(view) => {
                        let author = view.author.clone();
                        FeedItemMsg {
                            item: Some(feed_item::Item::Post(post(view))),
                            author,
                        }
                    }
                    FeedItem::Video { video, author } => FeedItemMsg {
                        item: Some(feed_item::Item::Video(video)),
                        author,
                    },
                })
                .collect(),
            next_page_token: token(next),
        }))
    }

    async fn get_trending(
        &self,
        request: Request<GetTrendingRequest>,
    ) -> Answer<GetTrendingResponse> {
        let videos = self.app.trending(request.get_ref().limit).await?;
        Ok(Response::new(GetTrendingResponse {
            videos: videos
                .into_iter()
                .map(|(video, counts, score)| TrendingVideo {
                    video: Some(video),
                    stats: Some(stats(counts)),
                    score,
                })
                .collect(),
        }))
    }

    async fn list_video_totals(
        &self,
        request: Request<ListVideoTotalsRequest>,
    ) -> Answer<ListVideoTotalsResponse> {
        // Per-video totals are for the payouts, not for anyone who asks.
        if !Caller::issued_by(&request, "payments-service") {
            return Err(Status::permission_denied(
                "only payments-service may list video totals",
            ));
        }
        let ListVideoTotalsRequest {
            page_size,
            page_token,
        } = request.into_inner();
        let after = match page_token.as_str() {
            "" => Uuid::nil(),
            raw => id("page_token", raw)?,
        };
        let (rows, next) = self.app.totals(after, page_size).await?;
        Ok(Response::new(ListVideoTotalsResponse {
            videos: rows
                .into_iter()
                .map(|(id, views, watch)| VideoTotals {
                    video_id: id.to_string(),
                    views: u64::try_from(views).unwrap_or(0),
                    watch_seconds: watch,
                })
                .collect(),
            next_page_token: next.map(|n| n.to_string()).unwrap_or_default(),
        }))
    }

    async fn forget_user(&self, request: Request<ForgetUserRequest>) -> Answer<ForgetUserResponse> {
        let me = Caller::require_user(&request)?;
        self.app.forget_user(me).await?;
        Ok(Response::new(ForgetUserResponse {}))
    }
}
