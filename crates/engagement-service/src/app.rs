//! engagement-service's use cases: typed arguments in (domain types, the caller), domain
//! values or an [`EngagementError`] out. No protobuf parsing here; `grpc.rs` translates.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use platform::identity::Caller;
use platform::pagination::{Cursor, PageSize};
use proto::engagement::v1::Author;
use proto::video::v1::Video;
use telemetry::events::Category;
use telemetry::metrics as m;
use uuid::Uuid;

use crate::ViewSettings;
use crate::counters::{Counters, ViewOutcome};
use crate::domain::{Target, Text, Viewer, clamp_watch, watched_enough};
use crate::error::EngagementError;
use crate::peers::{Peers, VideoFacts};
use crate::store::{CommentRow, Commented, Liked, PostRow, Store, VideoStats};

/// A comment with its author (`None` once the account is gone).
#[derive(Debug, Clone)]
pub struct CommentView {
    pub comment: CommentRow,
    pub author: Option<Author>,
}

/// A post with its author, and the video it shares when the reader may see it.
#[derive(Debug, Clone)]
pub struct PostView {
    pub post: PostRow,
    pub author: Option<Author>,
    pub video: Option<Video>,
}

/// One item of a home feed.
#[derive(Debug, Clone)]
pub enum FeedItem {
    Post(PostView),
    Video {
        video: Video,
        author: Option<Author>,
    },
}

impl FeedItem {
    fn position(&self) -> Option<Cursor> {
        match self {
            Self::Post(p) => Some(Cursor {
                created_at: p.post.created_at,
                id: p.post.id,
            }),
            Self::Video { video, .. } => Some(Cursor {
                created_at: video
                    .created_at
                    .as_ref()
                    .and_then(proto::serde_ext::from_timestamp)?,
                id: Uuid::parse_str(&video.id).ok()?,
            }),
        }
    }
}

/// A view reported: counted, or why not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewRecorded {
    Counted,
    NotCounted(&'static str),
}

/// Hits and lookups of a cache since the gauges were last set.
#[derive(Debug, Default)]
pub struct HitCounter {
    hits: std::sync::atomic::AtomicU64,
    lookups: std::sync::atomic::AtomicU64,
}

impl HitCounter {
    pub fn record(&self, hit: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        self.lookups.fetch_add(1, Relaxed);
        if hit {
            self.hits.fetch_add(1, Relaxed);
        }
    }

    /// Hits over lookups since the last call; `None` when there were none.
    pub fn take_ratio(&self) -> Option<f64> {
        use std::sync::atomic::Ordering::Relaxed;
        let lookups = self.lookups.swap(0, Relaxed);
        let hits = self.hits.swap(0, Relaxed);
        (lookups > 0).then(|| hits as f64 / lookups as f64)
    }
}

/// What views need of a video (its status, visibility to this caller and length), kept
/// briefly: a viewer's progress reports arrive every few seconds.
/// (video, caller) → when looked up, and what was found.
type VideoEntries = HashMap<(Uuid, Option<Uuid>), (Instant, Option<VideoFacts>)>;

struct VideoCache {
    ttl: Duration,
    entries: Mutex<VideoEntries>,
    stats: HitCounter,
}

/// Entries the video cache holds before it starts over.
const VIDEO_CACHE_ENTRIES: usize = 10_000;

impl VideoCache {
    fn get(&self, key: (Uuid, Option<Uuid>)) -> Option<Option<VideoFacts>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let found = entries
            .get(&key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, facts)| facts.clone());
        self.stats.record(found.is_some());
        found
    }

    fn put(&self, key: (Uuid, Option<Uuid>), facts: Option<VideoFacts>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= VIDEO_CACHE_ENTRIES {
            entries.retain(|_, (at, _)| at.elapsed() < self.ttl);
            if entries.len() >= VIDEO_CACHE_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now(), facts));
    }
}

/// Trending videos asked for at most.
pub const MAX_TRENDING: u32 = 50;

#[derive(Clone)]
pub struct Engagement {
    store: Store,
    counters: Counters,
    peers: Peers,
    views: ViewSettings,
    video_cache: Arc<VideoCache>,
    pub trending_cache: Arc<HitCounter>,
}

fn business(kind: &'static str, user: Option<Uuid>, target: Target, id: Uuid) {
    let user = user.map(|u| u.to_string()).unwrap_or_default();
    telemetry::business_event!(
        Category::Engagement,
        kind,
        user_id = %user,
        target_type = target.as_str(),
        target_id = %id
    );
}

impl Engagement {
    pub fn new(store: Store, counters: Counters, peers: Peers, views: ViewSettings) -> Self {
        let ttl = Duration::from_millis(views.video_cache_ttl_ms);
        Self {
            store,
            counters,
            peers,
            views,
            video_cache: Arc::new(VideoCache {
                ttl,
                entries: Mutex::new(HashMap::new()),
                stats: HitCounter::default(),
            }),
            trending_cache: Arc::new(HitCounter::default()),
        }
    }

    pub fn video_cache_ratio(&self) -> Option<f64> {
        self.video_cache.stats.take_ratio()
    }

    pub async fn stats(&self, video: Uuid) -> Result<VideoStats, EngagementError> {
        Ok(self.store.video_stats(video).await?)
    }

    pub async fn stats_many(
        &self,
        videos: &[Uuid],
    ) -> Result<HashMap<Uuid, VideoStats>, EngagementError> {
        let mut stats = self.store.video_stats_many(videos).await?;
        for id in videos {
            stats.entry(*id).or_default();
        }
        Ok(stats)
    }

    /// A deleted video: nothing of it is counted any more.
    pub async fn forget_video(&self, video: Uuid) -> Result<(), EngagementError> {
        self.store.delete_video(video).await?;
        if let Err(e) = self.counters.forget_video(video).await {
            // Readers filter deleted videos out of trending anyway.
            tracing::warn!(video_id = %video, error = %e, "deleted video left in trending");
        }
        Ok(())
    }

    /// A video `caller` may see, for counting a view: from the short cache when it can.
    async fn video_for_views(
        &self,
        caller: Caller,
        video: Uuid,
    ) -> Result<VideoFacts, EngagementError> {
        let key = (video, caller.user_id());
        let facts = match self.video_cache.get(key) {
            Some(facts) => facts,
            None => {
                let facts = self.peers.videos(caller, &[video]).await?.remove(&video);
                self.video_cache.put(key, facts.clone());
                facts
            }
        };
        facts.ok_or_else(|| EngagementError::not_found("video", video))
    }

    /// A viewer watched `video` for `watch_seconds`: counted once per viewer per window,
    /// after the minimum watch time.
    pub async fn record_view(
        &self,
        caller: Caller,
        video: Uuid,
        viewer: Viewer,
        watch_seconds: f64,
    ) -> Result<ViewRecorded, EngagementError> {
        // A signed-in caller is that viewer, whatever key came with the call; an anonymous
        // call cannot name a user.
        let viewer = match caller.user_id() {
            Some(user) => Viewer::User(user),
            None if viewer.is_user() => {
                return Err(crate::domain::InvalidField::new(
                    "viewer_key",
                    "an anonymous call cannot name a user",
                )
                .into());
            }
            None => viewer,
        };
        let facts = self.video_for_views(caller, video).await?;
        if !facts.ready {
            return Err(EngagementError::NotReady(video));
        }
        let watch = clamp_watch(watch_seconds, facts.duration_seconds)?;
        metrics::histogram!(m::USER_ENGAGEMENT_DURATION_SECONDS, "activity_type" => "watch")
            .record(watch);
        if !watched_enough(watch, facts.duration_seconds, self.views.min_watch_seconds) {
            metrics::counter!(m::VIDEO_VIEWS_REJECTED_TOTAL, "reason" => "too_short").increment(1);
            return Ok(ViewRecorded::NotCounted("too_short"));
        }
        let outcome = self
            .counters
            .record_view(video, &viewer, watch, facts.duration_seconds)
            .await?;
        Ok(match outcome {
            ViewOutcome::Counted => {
                metrics::counter!(m::VIDEO_VIEWS_TOTAL).increment(1);
                business("video_viewed", caller.user_id(), Target::Video, video);
                ViewRecorded::Counted
            }
            ViewOutcome::Duplicate => {
                metrics::counter!(m::VIDEO_VIEWS_REJECTED_TOTAL, "reason" => "duplicate")
                    .increment(1);
                ViewRecorded::NotCounted("duplicate")
            }
            ViewOutcome::AddressLimit => {
                metrics::counter!(m::VIDEO_VIEWS_REJECTED_TOTAL, "reason" => "address_limit")
                    .increment(1);
                ViewRecorded::NotCounted("address_limit")
            }
        })
    }

    /// Likes or unlikes `target` as `me`; the target's likes afterwards.
    pub async fn set_like(
        &self,
        me: Uuid,
        target: Target,
        id: Uuid,
        liked: bool,
    ) -> Result<u64, EngagementError> {
        let caller = Caller::User(me);
        match target {
            Target::Video => {
                let facts = self.peers.video(caller, id).await?;
                if !facts.ready {
                    return Err(EngagementError::NotReady(id));
                }
            }
            Target::Comment => {
                // A comment is as visible as its video.
                let comment = self
                    .store
                    .comment(id)
                    .await?
                    .ok_or_else(|| EngagementError::not_found("comment", id))?;
                let facts =
                    self.peers
                        .video(caller, comment.video_id)
                        .await
                        .map_err(|e| match e {
                            EngagementError::NotFound { .. } => {
                                EngagementError::not_found("comment", id)
                            }
                            e => e,
                        })?;
                if !facts.listed_for(Some(me)) {
                    return Err(EngagementError::not_found("comment", id));
                }
            }
            Target::Post => {}
        }
        let (likes, changed) = match self.store.set_like(target, id, me, liked).await? {
            Liked::Done { likes, changed } => (likes, changed),
            Liked::NoTarget => return Err(EngagementError::not_found(target.as_str(), id)),
        };
        if changed {
            if liked {
                metrics::counter!(m::LIKES_TOTAL, "target_type" => target.as_str()).increment(1);
                if target == Target::Post {
                    metrics::counter!(m::POST_LIKES_TOTAL).increment(1);
                }
            }
            business(
                if liked { "liked" } else { "unliked" },
                Some(me),
                target,
                id,
            );
            if target == Target::Video {
                let delta = if liked { 1.0 } else { -1.0 };
                if let Err(e) = self.counters.trend_like(id, delta).await {
                    tracing::warn!(video_id = %id, error = %e, "like not added to trending");
                }
            }
        }
        Ok(u64::try_from(likes).unwrap_or(0))
    }

    pub async fn create_comment(
        &self,
        me: Uuid,
        video: Uuid,
        text: Text,
        parent: Option<Uuid>,
    ) -> Result<CommentView, EngagementError> {
        let caller = Caller::User(me);
        let me_only = [me];
        let (facts, authors) = tokio::join!(
            self.peers.video(caller, video),
            self.peers.authors(&me_only)
        );
        if !facts?.listed_for(Some(me)) {
            return Err(EngagementError::NotReady(video));
        }
        let comment = match self
            .store
            .create_comment(Uuid::new_v4(), video, parent, me, text.as_str())
            .await?
        {
            Commented::Done(c) => c,
            Commented::NoParent => {
                return Err(EngagementError::not_found(
                    "comment",
                    parent.unwrap_or_default(),
                ));
            }
            Commented::NoVideo => return Err(EngagementError::not_found("video", video)),
        };
        metrics::counter!(m::COMMENTS_TOTAL).increment(1);
        business("comment_created", Some(me), Target::Video, video);
        Ok(CommentView {
            author: authors.ok().and_then(|mut a| a.remove(&me)),
            comment,
        })
    }

    /// A page of a video's comments (or of one comment's replies): one call to
    /// video-service (may the caller see the video) and one to user-service (the authors).
    pub async fn comments(
        &self,
        caller: Caller,
        video: Uuid,
        parent: Option<Uuid>,
        size: PageSize,
        cursor: Option<Cursor>,
    ) -> Result<(Vec<CommentView>, Option<Cursor>), EngagementError> {
        let (facts, page) = tokio::join!(
            self.peers.video(caller, video),
            self.store.comments_page(video, parent, size, cursor)
        );
        if !facts?.listed_for(caller.user_id()) {
            return Err(EngagementError::not_found("video", video));
        }
        let (rows, next) = page?;
        let mut ids: Vec<Uuid> = rows.iter().map(|c| c.author_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let authors = self.peers.authors(&ids).await?;
        Ok((
            rows.into_iter()
                .map(|comment| CommentView {
                    author: authors.get(&comment.author_id).cloned(),
                    comment,
                })
                .collect(),
            next,
        ))
    }

    /// By its author, or the owner of its video.
    pub async fn delete_comment(&self, me: Uuid, id: Uuid) -> Result<(), EngagementError> {
        let comment = self
            .store
            .comment(id)
            .await?
            .ok_or_else(|| EngagementError::not_found("comment", id))?;
        if comment.author_id != me {
            let owner = self
                .peers
                .videos(Caller::User(me), &[comment.video_id])
                .await?
                .remove(&comment.video_id)
                .map(|f| f.owner);
            match owner {
                Some(owner) if owner == me => {}
                Some(_) => {
                    return Err(EngagementError::Forbidden(
                        "only its author or the video's owner may delete a comment".into(),
                    ));
                }
                None => return Err(EngagementError::not_found("comment", id)),
            }
        }
        self.store.delete_comment(&comment).await?;
        business("comment_deleted", Some(me), Target::Comment, id);
        Ok(())
    }

    pub async fn create_post(
        &self,
        me: Uuid,
        text: Text,
        video: Option<Uuid>,
    ) -> Result<PostView, EngagementError> {
        let caller = Caller::User(me);
        let shared = match video {
            Some(v) => {
                let facts = self.peers.video(caller, v).await?;
                if !facts.listed_for(Some(me)) {
                    return Err(EngagementError::NotReady(v));
                }
                Some(facts.message)
            }
            None => None,
        };
        let post = self
            .store
            .create_post(Uuid::new_v4(), me, text.as_str(), video)
            .await?;
        metrics::counter!(m::POSTS_TOTAL).increment(1);
        business("post_created", Some(me), Target::Post, post.id);
        let author = self
            .peers
            .authors(&[me])
            .await
            .ok()
            .and_then(|mut a| a.remove(&me));
        Ok(PostView {
            post,
            author,
            video: shared,
        })
    }

    /// Posts with their authors and shared videos: one call to each service.
    async fn post_views(
        &self,
        caller: Caller,
        posts: Vec<PostRow>,
    ) -> Result<Vec<PostView>, EngagementError> {
        let mut authors: Vec<Uuid> = posts.iter().map(|p| p.author_id).collect();
        authors.sort_unstable();
        authors.dedup();
        let mut videos: Vec<Uuid> = posts.iter().filter_map(|p| p.video_id).collect();
        videos.sort_unstable();
        videos.dedup();
        let (authors, videos) = tokio::join!(
            self.peers.authors(&authors),
            self.peers.videos(caller, &videos)
        );
        let (authors, videos) = (authors?, videos?);
        Ok(posts
            .into_iter()
            .map(|post| PostView {
                author: authors.get(&post.author_id).cloned(),
                video: post
                    .video_id
                    .and_then(|v| videos.get(&v))
                    .filter(|f| f.listed_for(caller.user_id()))
                    .map(|f| f.message.clone()),
                post,
            })
            .collect())
    }

    pub async fn post(&self, caller: Caller, id: Uuid) -> Result<PostView, EngagementError> {
        let post = self
            .store
            .post(id)
            .await?
            .ok_or_else(|| EngagementError::not_found("post", id))?;
        self.post_views(caller, vec![post])
            .await?
            .pop()
            .ok_or_else(|| EngagementError::not_found("post", id))
    }

    pub async fn delete_post(&self, me: Uuid, id: Uuid) -> Result<(), EngagementError> {
        let Some(post) = self.store.post(id).await? else {
            return Err(EngagementError::not_found("post", id));
        };
        if post.author_id != me {
            return Err(EngagementError::Forbidden(
                "only its author may delete a post".into(),
            ));
        }
        if !self.store.delete_post(id, me).await? {
            return Err(EngagementError::not_found("post", id));
        }
        business("post_deleted", Some(me), Target::Post, id);
        Ok(())
    }

    pub async fn user_posts(
        &self,
        caller: Caller,
        author: Uuid,
        size: PageSize,
        cursor: Option<Cursor>,
    ) -> Result<(Vec<PostView>, Option<Cursor>), EngagementError> {
        let rows = self
            .store
            .posts_of(&[author], cursor, i64::from(size.get()) + 1)
            .await?;
        let (rows, next) = platform::pagination::split_page(rows, size, |p: &PostRow| Cursor {
            created_at: p.created_at,
            id: p.id,
        });
        Ok((self.post_views(caller, rows).await?, next))
    }

    /// The home feed: posts and ready public videos of whom `me` follows, newest first.
    /// One call to user-service (whom, with their names), one to video-service (their
    /// videos, and the videos the page's posts share).
    pub async fn feed(
        &self,
        me: Uuid,
        size: PageSize,
        cursor: Option<Cursor>,
    ) -> Result<(Vec<FeedItem>, Option<Cursor>), EngagementError> {
        if cursor.is_some() {
            match self.counters.browse_tick(me).await {
                Ok(Some(seconds)) => {
                    metrics::histogram!(m::USER_ENGAGEMENT_DURATION_SECONDS, "activity_type" => "browse")
                        .record(seconds);
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "browse time not measured"),
            }
        } else if let Err(e) = self.counters.browse_tick(me).await {
            tracing::debug!(error = %e, "browse time not measured");
        }
        let following = self.peers.following(me).await?;
        if following.is_empty() {
            return Ok((Vec::new(), None));
        }
        let authors: HashMap<Uuid, Author> = following.into_iter().collect();
        let ids: Vec<Uuid> = authors.keys().copied().collect();
        let want = size.get() as usize;
        let posts = self
            .store
            .posts_of(&ids, cursor, i64::from(size.get()) + 1)
            .await?;
        let mut shared: Vec<Uuid> = posts.iter().take(want).filter_map(|p| p.video_id).collect();
        shared.sort_unstable();
        shared.dedup();
        let (videos, shared) = self
            .peers
            .feed_videos(Caller::User(me), &ids, cursor, size.get() + 1, &shared)
            .await?;
        let mut items: Vec<FeedItem> = Vec::with_capacity(posts.len() + videos.len());
        for post in posts {
            items.push(FeedItem::Post(PostView {
                author: authors.get(&post.author_id).cloned(),
                video: post
                    .video_id
                    .and_then(|v| shared.get(&v))
                    .filter(|f| f.listed_for(Some(me)))
                    .map(|f| f.message.clone()),
                post,
            }));
        }
        for video in videos {
            let author = Uuid::parse_str(&video.owner_id)
                .ok()
                .and_then(|o| authors.get(&o).cloned());
            items.push(FeedItem::Video { video, author });
        }
        // Newest first by (created_at, id): a total order, so a cursor splits it cleanly.
        let mut keyed: Vec<(Cursor, FeedItem)> = items
            .into_iter()
            .filter_map(|item| item.position().map(|p| (p, item)))
            .collect();
        keyed.sort_by_key(|(p, _)| std::cmp::Reverse((p.created_at, p.id)));
        let next = (keyed.len() > want).then(|| keyed[want - 1].0);
        keyed.truncate(want);
        Ok((keyed.into_iter().map(|(_, item)| item).collect(), next))
    }

    /// The top `limit` trending videos that are ready and public, with counts and score.
    pub async fn trending(
        &self,
        limit: u32,
    ) -> Result<Vec<(Video, VideoStats, f64)>, EngagementError> {
        let limit = match limit {
            0 => 20,
            n if n <= MAX_TRENDING => n,
            n => {
                return Err(crate::domain::InvalidField::new(
                    "limit",
                    format!("limit must be at most {MAX_TRENDING}, got {n}"),
                )
                .into());
            }
        } as usize;
        // Candidates beyond the limit: some may have turned private or been deleted.
        let (ranked, hit) = self.counters.trending(limit * 2).await?;
        self.trending_cache.record(hit);
        let ids: Vec<Uuid> = ranked.iter().map(|(id, _)| *id).collect();
        let (videos, stats) = tokio::join!(
            self.peers.videos(Caller::Anonymous, &ids),
            self.store.video_stats_many(&ids)
        );
        let (mut videos, stats) = (videos?, stats?);
        Ok(ranked
            .into_iter()
            .filter_map(|(id, score)| {
                let facts = videos.remove(&id).filter(|f| f.ready && f.public)?;
                Some((
                    facts.message,
                    stats.get(&id).copied().unwrap_or_default(),
                    score,
                ))
            })
            .take(limit)
            .collect())
    }

    /// Removes `me`'s likes, comments and posts (account deletion).
    pub async fn forget_user(&self, me: Uuid) -> Result<(), EngagementError> {
        self.store.forget_user(me).await?;
        telemetry::business_event!(Category::Engagement, "user_forgotten", user_id = %me);
        Ok(())
    }

    /// A page of every video's totals, in id order after `after`; and the next page's start.
    pub async fn totals(
        &self,
        after: Uuid,
        size: u32,
    ) -> Result<(Vec<(Uuid, i64, f64)>, Option<Uuid>), EngagementError> {
        let size = match size {
            0 => 500,
            n if n <= 1000 => n,
            n => {
                return Err(crate::domain::InvalidField::new(
                    "page_size",
                    format!("page_size must be at most 1000, got {n}"),
                )
                .into());
            }
        };
        let mut rows = self.store.totals_page(after, i64::from(size) + 1).await?;
        let next = if rows.len() > size as usize {
            rows.truncate(size as usize);
            rows.last().map(|r| r.0)
        } else {
            None
        };
        Ok((rows, next))
    }

    /// Adds buffered views to Postgres: every batch waiting, each exactly once.
    pub async fn flush_views(&self) -> Result<usize, EngagementError> {
        let batches = self.counters.take_batches().await?;
        let mut flushed = 0;
        for batch in batches {
            if !batch.videos.is_empty() {
                self.store.apply_batch(&batch).await?;
            }
            self.counters.finish_batch(batch.id).await?;
            flushed += 1;
        }
        Ok(flushed)
    }

    /// Observes `content_performance_score` for the content active since `since`.
    pub async fn score_content(
        &self,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), EngagementError> {
        for v in self.store.videos_active_since(since).await? {
            let score = crate::domain::video_score(
                v.views,
                v.likes,
                v.comments,
                v.watch_seconds,
                v.duration_seconds,
            );
            metrics::histogram!(m::CONTENT_PERFORMANCE_SCORE, "content_type" => "video")
                .record(score);
        }
        for likes in self.store.posts_active_since(since).await? {
            metrics::histogram!(m::CONTENT_PERFORMANCE_SCORE, "content_type" => "post")
                .record(crate::domain::post_score(likes));
        }
        if let Err(e) = self.store.prune_flushes().await {
            tracing::warn!(error = %e, "old view flushes not pruned");
        }
        Ok(())
    }
}
