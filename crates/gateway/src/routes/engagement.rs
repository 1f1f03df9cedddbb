//! Views, likes, comments, posts, the home feed and trending: engagement-service behind
//! REST.

use actix_web::{HttpRequest, HttpResponse, web};
use proto::engagement::v1::{
    Author, Comment, CreateCommentRequest, CreatePostRequest, DeleteCommentRequest,
    DeletePostRequest, GetFeedRequest, GetPostRequest, GetTrendingRequest, GetTrendingResponse,
    ListCommentsRequest, ListUserPostsRequest, Post, RecordViewRequest, SetLikeRequest, TargetType,
    feed_item,
};
use proto::video::v1::Video;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{PageParams, page_error, parse_id};
use crate::Clients;
use crate::edge::{Authenticated, Viewer, client_ip};
use crate::error::{ApiError, ErrorBody};

const ENGAGEMENT: &str = "engagement-service";

/// The anonymous viewer cookie: `<id>.<tag>`, the tag a keyed hash of the id, so a client
/// cannot make up ids (each new one costs a request, and they are capped per address).
pub const VIEWER_COOKIE: &str = "sf_viewer";

/// Signs and checks viewer cookies with a key of the gateway's.
#[derive(Clone)]
pub struct ViewerCookies {
    key: [u8; 32],
}

impl ViewerCookies {
    /// The key is derived from `secret` (the access token key), never the key itself.
    pub fn new(secret: &[u8]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"socialflow viewer cookie\0");
        hasher.update(secret);
        Self {
            key: hasher.finalize().into(),
        }
    }

    fn tag(&self, id: &str) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.key);
        hasher.update(id.as_bytes());
        hex(&hasher.finalize()[..16])
    }

    /// A new cookie value, and its id.
    fn issue(&self) -> (String, String) {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let tag = self.tag(&id);
        (format!("{id}.{tag}"), id)
    }

    /// The id of a cookie value this gateway issued.
    fn verify<'a>(&self, value: &'a str) -> Option<&'a str> {
        let (id, tag) = value.split_once('.')?;
        (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) && self.tag(id) == tag)
            .then_some(id)
    }
}

/// The value of the viewer cookie in the request's `Cookie` headers, if any.
fn viewer_cookie(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get_all(actix_web::http::header::COOKIE)
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == VIEWER_COOKIE)
        .map(|(_, value)| value)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ViewBody {
    watch_seconds: f64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ViewAnswer {
    counted: bool,
    /// Why not: `duplicate`, `too_short` or `address_limit`.
    reason: Option<String>,
}

/// `POST /videos/{id}/views` (anyone): counted once per viewer per window, after the
/// minimum watch time. Anonymous viewers are known by a signed cookie (issued here) and
/// their address.
/// Reports that a video was watched. Anonymous viewers get a `sf_viewer` cookie.
#[utoipa::path(post, path = "/api/v1/videos/{id}/views", tag = "engagement", security((), ("bearer" = [])),
    params(("id" = Uuid, Path, description = "The video's id")), request_body = ViewBody,
    responses((status = 200, description = "Whether this report counted as a view", body = ViewAnswer)))]
pub async fn record_view(
    req: HttpRequest,
    viewer: Viewer,
    clients: web::Data<Clients>,
    cookies: web::Data<ViewerCookies>,
    path: web::Path<String>,
    body: web::Json<ViewBody>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id("id", &path)?;
    let address = client_ip(&req);
    // Anonymous viewers are their cookie; one without is given one and counted as it, so
    // its next reports are the same viewer. A client that never keeps cookies mints a new
    // viewer per report: engagement-service caps those per address.
    let mut issued = None;
    let viewer_key = match viewer.0 {
        Some(user) => format!("user:{user}"),
        None => {
            let known = viewer_cookie(&req).and_then(|value| cookies.verify(value));
            let id = match known {
                Some(id) => id.to_owned(),
                None => {
                    let (value, id) = cookies.issue();
                    issued = Some(value);
                    id
                }
            };
            format!("cookie:{id}@{address}")
        }
    };
    let reply = clients
        .engagement
        .clone()
        .record_view(viewer.request(RecordViewRequest {
            video_id: id.to_string(),
            viewer_key,
            watch_seconds: body.watch_seconds,
        }))
        .await
        .map_err(|s| ApiError::from_status(ENGAGEMENT, &s))?
        .into_inner();
    let mut response = HttpResponse::Ok();
    if let Some(value) = issued {
        // Not a credential: it only tells one anonymous viewer from another.
        response.insert_header((
            actix_web::http::header::SET_COOKIE,
            format!(
                "{VIEWER_COOKIE}={value}; Path=/api/v1/videos; Max-Age=31536000; HttpOnly; SameSite=Lax"
            ),
        ));
    }
    Ok(response.json(ViewAnswer {
        counted: reply.counted,
        reason: Some(reply.reason).filter(|r| !r.is_empty()),
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LikeAnswer {
    liked: bool,
    likes: u64,
}

async fn set_like(
    me: Authenticated,
    clients: &Clients,
    target: TargetType,
    raw: &str,
    liked: bool,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id("id", raw)?;
    let reply = clients
        .engagement
        .clone()
        .set_like(me.request(SetLikeRequest {
            target_type: target as i32,
            target_id: id.to_string(),
            liked,
        }))
        .await
        .map_err(|s| ApiError::from_status(ENGAGEMENT, &s))?
        .into_inner();
    Ok(HttpResponse::Ok().json(LikeAnswer {
        liked: reply.liked,
        likes: reply.likes,
    }))
}

/// Likes a video (idempotent).
#[utoipa::path(put, path = "/api/v1/videos/{id}/like", tag = "engagement", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The video's id")),
    responses((status = 200, description = "Whether the caller likes it now, and its count", body = LikeAnswer)))]
pub async fn like_video(
    me: Authenticated,
    c: web::Data<Clients>,
    p: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_like(me, &c, TargetType::Video, &p, true).await
}

/// Takes back a like of a video (idempotent).
#[utoipa::path(delete, path = "/api/v1/videos/{id}/like", tag = "engagement", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The video's id")),
    responses((status = 200, description = "Whether the caller likes it now, and its count", body = LikeAnswer)))]
pub async fn unlike_video(
    me: Authenticated,
    c: web::Data<Clients>,
    p: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_like(me, &c, TargetType::Video, &p, false).await
}

/// Likes a post (idempotent).
#[utoipa::path(put, path = "/api/v1/posts/{id}/like", tag = "engagement", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The post's id")),
    responses((status = 200, description = "Whether the caller likes it now, and its count", body = LikeAnswer)))]
pub async fn like_post(
    me: Authenticated,
    c: web::Data<Clients>,
    p: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_like(me, &c, TargetType::Post, &p, true).await
}

/// Takes back a like of a post (idempotent).
#[utoipa::path(delete, path = "/api/v1/posts/{id}/like", tag = "engagement", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The post's id")),
    responses((status = 200, description = "Whether the caller likes it now, and its count", body = LikeAnswer)))]
pub async fn unlike_post(
    me: Authenticated,
    c: web::Data<Clients>,
    p: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_like(me, &c, TargetType::Post, &p, false).await
}

/// Likes a comment (idempotent).
#[utoipa::path(put, path = "/api/v1/comments/{id}/like", tag = "engagement", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The comment's id")),
    responses((status = 200, description = "Whether the caller likes it now, and its count", body = LikeAnswer)))]
pub async fn like_comment(
    me: Authenticated,
    c: web::Data<Clients>,
    p: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_like(me, &c, TargetType::Comment, &p, true).await
}

/// Takes back a like of a comment (idempotent).
#[utoipa::path(delete, path = "/api/v1/comments/{id}/like", tag = "engagement", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The comment's id")),
    responses((status = 200, description = "Whether the caller likes it now, and its count", body = LikeAnswer)))]
pub async fn unlike_comment(
    me: Authenticated,
    c: web::Data<Clients>,
    p: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_like(me, &c, TargetType::Comment, &p, false).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewComment {
    text: String,
    /// The comment this replies to.
    #[schema(value_type = Option<uuid::Uuid>)]
    parent_id: Option<String>,
}

/// Comments on a video, or replies to one of its comments (one level).
#[utoipa::path(post, path = "/api/v1/videos/{id}/comments", tag = "engagement", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The video's id")), request_body = NewComment,
    responses((status = 201, description = "The comment", body = Comment)))]
pub async fn create_comment(
    me: Authenticated,
    clients: web::Data<Clients>,
    path: web::Path<String>,
    body: web::Json<NewComment>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id("id", &path)?;
    let NewComment { text, parent_id } = body.into_inner();
    let parent_id = parent_id
        .map(|p| parse_id("parent_id", &p).map(|p| p.to_string()))
        .transpose()?;
    let comment = clients
        .engagement
        .clone()
        .create_comment(me.request(CreateCommentRequest {
            video_id: id.to_string(),
            text,
            parent_id,
        }))
        .await
        .map_err(|s| ApiError::from_status(ENGAGEMENT, &s))?
        .into_inner();
    Ok(HttpResponse::Created().json(comment))
}

/// `?parent_id=&limit=&cursor=` of a comment list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CommentParams {
    /// The replies to this comment, instead of the top-level comments.
    #[param(value_type = Option<uuid::Uuid>)]
    parent_id: Option<String>,
    /// Items per page: 1 to 100, default 20.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CommentPage {
    comments: Vec<Comment>,
    next_cursor: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PostPage {
    posts: Vec<Post>,
    next_cursor: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FeedPage {
    items: Vec<FeedEntry>,
    next_cursor: Option<String>,
}

/// `{"type": "post", "post": {…}, "author": {…}}` or the same with `video`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum FeedEntry {
    Post {
        post: Post,
        author: Option<Author>,
    },
    Video {
        video: Video,
        author: Option<Author>,
    },
}

fn next_cursor(token: String) -> Option<String> {
    Some(token).filter(|t| !t.is_empty())
}

/// `GET /videos/{id}/comments` (anyone who may see the video): newest first; with
/// `parent_id`, the replies to that comment.
#[utoipa::path(get, path = "/api/v1/videos/{id}/comments", tag = "engagement", security((), ("bearer" = [])),
    params(("id" = Uuid, Path, description = "The video's id"), CommentParams),
    responses((status = 200, description = "A page of comments", body = CommentPage)))]
pub async fn list_comments(
    viewer: Viewer,
    clients: web::Data<Clients>,
    path: web::Path<String>,
    params: web::Query<CommentParams>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id("id", &path)?;
    let CommentParams {
        parent_id,
        limit,
        cursor,
    } = params.into_inner();
    let parent_id = parent_id
        .map(|p| parse_id("parent_id", &p).map(|p| p.to_string()))
        .transpose()?;
    let (page_size, page_token) = PageParams { limit, cursor }.into_request()?;
    let reply = clients
        .engagement
        .clone()
        .list_comments(viewer.request(ListCommentsRequest {
            video_id: id.to_string(),
            parent_id,
            page_size,
            page_token,
        }))
        .await
        .map_err(|s| page_error(ENGAGEMENT, &s))?
        .into_inner();
    Ok(HttpResponse::Ok().json(CommentPage {
        comments: reply.comments,
        next_cursor: next_cursor(reply.next_page_token),
    }))
}

/// Deletes a comment (its author, or the video's owner).
#[utoipa::path(delete, path = "/api/v1/comments/{id}", tag = "engagement", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The comment's id")),
    responses((status = 204, description = "Deleted")))]
pub async fn delete_comment(
    me: Authenticated,
    clients: web::Data<Clients>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id("id", &path)?;
    clients
        .engagement
        .clone()
        .delete_comment(me.request(DeleteCommentRequest { id: id.to_string() }))
        .await
        .map_err(|s| ApiError::from_status(ENGAGEMENT, &s))?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPost {
    text: String,
    /// A video the post is about.
    #[schema(value_type = Option<uuid::Uuid>)]
    video_id: Option<String>,
}

/// Posts a text, optionally about a video.
#[utoipa::path(post, path = "/api/v1/posts", tag = "engagement", security(("bearer" = [])),
    request_body = NewPost,
    responses(
        (status = 201, description = "The post", body = Post),
        (status = 404, description = "No such video, or none the caller may see", body = ErrorBody),
    ))]
pub async fn create_post(
    me: Authenticated,
    clients: web::Data<Clients>,
    body: web::Json<NewPost>,
) -> Result<HttpResponse, ApiError> {
    let NewPost { text, video_id } = body.into_inner();
    let video_id = video_id
        .map(|v| parse_id("video_id", &v).map(|v| v.to_string()))
        .transpose()?;
    let post = clients
        .engagement
        .clone()
        .create_post(me.request(CreatePostRequest { text, video_id }))
        .await
        .map_err(|s| ApiError::from_status(ENGAGEMENT, &s))?
        .into_inner();
    Ok(HttpResponse::Created().json(post))
}

#[utoipa::path(get, path = "/api/v1/posts/{id}", tag = "engagement", security((), ("bearer" = [])),
    params(("id" = Uuid, Path, description = "The post's id")),
    responses((status = 200, description = "The post", body = Post)))]
pub async fn get_post(
    viewer: Viewer,
    clients: web::Data<Clients>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id("id", &path)?;
    let post = clients
        .engagement
        .clone()
        .get_post(viewer.request(GetPostRequest { id: id.to_string() }))
        .await
        .map_err(|s| ApiError::from_status(ENGAGEMENT, &s))?
        .into_inner();
    Ok(HttpResponse::Ok().json(post))
}

/// Deletes a post (its author only).
#[utoipa::path(delete, path = "/api/v1/posts/{id}", tag = "engagement", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The post's id")),
    responses((status = 204, description = "Deleted")))]
pub async fn delete_post(
    me: Authenticated,
    clients: web::Data<Clients>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id("id", &path)?;
    clients
        .engagement
        .clone()
        .delete_post(me.request(DeletePostRequest { id: id.to_string() }))
        .await
        .map_err(|s| ApiError::from_status(ENGAGEMENT, &s))?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /users/{id}/posts` (anyone): newest first.
#[utoipa::path(get, path = "/api/v1/users/{id}/posts", tag = "engagement", security((), ("bearer" = [])),
    params(("id" = Uuid, Path, description = "The author's id"), PageParams),
    responses((status = 200, description = "A page of posts", body = PostPage)))]
pub async fn user_posts(
    viewer: Viewer,
    clients: web::Data<Clients>,
    path: web::Path<String>,
    params: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id("id", &path)?;
    let (page_size, page_token) = params.into_inner().into_request()?;
    let reply = clients
        .engagement
        .clone()
        .list_user_posts(viewer.request(ListUserPostsRequest {
            author_id: id.to_string(),
            page_size,
            page_token,
        }))
        .await
        .map_err(|s| page_error(ENGAGEMENT, &s))?
        .into_inner();
    Ok(HttpResponse::Ok().json(PostPage {
        posts: reply.posts,
        next_cursor: next_cursor(reply.next_page_token),
    }))
}

/// `GET /feed`: posts and ready public videos of whom the caller follows, newest first.
#[utoipa::path(get, path = "/api/v1/feed", tag = "engagement", security(("bearer" = [])),
    params(PageParams), responses((status = 200, description = "A page of the feed", body = FeedPage)))]
pub async fn feed(
    me: Authenticated,
    clients: web::Data<Clients>,
    params: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let (page_size, page_token) = params.into_inner().into_request()?;
    let reply = clients
        .engagement
        .clone()
        .get_feed(me.request(GetFeedRequest {
            page_size,
            page_token,
        }))
        .await
        .map_err(|s| page_error(ENGAGEMENT, &s))?
        .into_inner();
    let items = reply
        .items
        .into_iter()
        .filter_map(|item| {
            let author = item.author;
            Some(match item.item? {
                feed_item::Item::Post(post) => FeedEntry::Post { post, author },
                feed_item::Item::Video(video) => FeedEntry::Video { video, author },
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(FeedPage {
        items,
        next_cursor: next_cursor(reply.next_page_token),
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TrendingParams {
    /// How many: 1 to 50, default 20.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 50)]
    limit: Option<String>,
}

/// `GET /videos/trending` (anyone).
#[utoipa::path(get, path = "/api/v1/videos/trending", tag = "engagement", params(TrendingParams),
    responses((status = 200, description = "The most watched videos of late, best first", body = GetTrendingResponse)))]
pub async fn trending(
    clients: web::Data<Clients>,
    params: web::Query<TrendingParams>,
) -> Result<HttpResponse, ApiError> {
    let limit = match params.limit.as_deref() {
        None => 0,
        Some(raw) => match raw.parse::<u32>() {
            Ok(n) if (1..=50).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "limit must be an integer from 1 to 50, got `{raw}`"
                )));
            }
        },
    };
    let reply = platform::retry::idempotent(&clients.retries, ENGAGEMENT, || {
        let mut client = clients.engagement.clone();
        async move { client.get_trending(GetTrendingRequest { limit }).await }
    })
    .await
    .map_err(|s| ApiError::from_status(ENGAGEMENT, &s))?
    .into_inner();
    Ok(HttpResponse::Ok().json(reply))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewer_cookies_verify_only_what_was_issued() {
        let cookies = ViewerCookies::new(b"secret");
        let (value, id) = cookies.issue();
        assert_eq!(cookies.verify(&value), Some(id.as_str()));
        assert!(cookies.verify(&value).is_some());
        let other = ViewerCookies::new(b"another secret");
        assert!(other.verify(&value).is_none(), "another key's cookie");
        let (id, _) = value.split_once('.').expect("id.tag");
        assert!(
            cookies
                .verify(&format!("{id}.{}", "0".repeat(32)))
                .is_none()
        );
        assert!(cookies.verify("nonsense").is_none());
        assert!(cookies.verify(&format!("{}.x", "a".repeat(32))).is_none());
    }
}
