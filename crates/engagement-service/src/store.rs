//! SQL for schema `engagement`. Every counter changes in the same statement or
//! transaction as the rows it counts, so counts equal rows under any concurrency:
//! - a like is `INSERT … ON CONFLICT DO NOTHING` / `DELETE`, and the counter moves by the
//!   number of rows that statement really inserted or deleted;
//! - a post or comment being liked is locked (`FOR UPDATE`) by the like, so its deletion
//!   waits and then removes every like; a video has no row here, so likes, comments and
//!   view flushes take a shared advisory lock on its id and its deletion an exclusive one,
//!   after which a tombstone refuses anything new for it.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use platform::database::{Db, DbError, db_span};
use platform::pagination::{Cursor, PageSize, split_page};
use tokio_postgres::Row;
use tracing::Instrument;
use uuid::Uuid;

use crate::counters::Batch;
use crate::domain::Target;

/// A video's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VideoStats {
    pub views: u64,
    pub likes: u64,
    pub comments: u64,
}

#[derive(Debug, Clone)]
pub struct CommentRow {
    pub id: Uuid,
    pub video_id: Uuid,
    pub parent_id: Option<Uuid>,
    pub author_id: Uuid,
    pub body: String,
    pub likes: i64,
    pub replies: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct PostRow {
    pub id: Uuid,
    pub author_id: Uuid,
    pub body: String,
    pub video_id: Option<Uuid>,
    pub likes: i64,
    pub created_at: DateTime<Utc>,
}

/// A video active since the last scoring: its counts and length.
#[derive(Debug, Clone, Copy)]
pub struct VideoActivity {
    pub views: u64,
    pub likes: u64,
    pub comments: u64,
    pub watch_seconds: f64,
    pub duration_seconds: u32,
}

/// How a like or unlike went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liked {
    /// The target's likes after the change, and whether this call changed anything.
    Done { likes: i64, changed: bool },
    /// No such target (or a deleted video).
    NoTarget,
}

/// How creating a comment went.
#[derive(Debug, Clone)]
pub enum Commented {
    Done(CommentRow),
    /// The parent is not a top-level comment of this video.
    NoParent,
    /// The video was deleted.
    NoVideo,
}

const COMMENT_COLUMNS: &str =
    "id, video_id, parent_id, author_id, body, likes, replies, created_at";
const POST_COLUMNS: &str = "id, author_id, body, video_id, likes, created_at";

fn comment(row: &Row) -> CommentRow {
    CommentRow {
        id: row.get("id"),
        video_id: row.get("video_id"),
        parent_id: row.get("parent_id"),
        author_id: row.get("author_id"),
        body: row.get("body"),
        likes: row.get("likes"),
        replies: row.get("replies"),
        created_at: row.get("created_at"),
    }
}

fn post(row: &Row) -> PostRow {
    PostRow {
        id: row.get("id"),
        author_id: row.get("author_id"),
        body: row.get("body"),
        video_id: row.get("video_id"),
        likes: row.get("likes"),
        created_at: row.get("created_at"),
    }
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Locks a video's id for this transaction: shared by everything that adds to it,
/// exclusive for its deletion.
const LOCK_VIDEO_SHARED: &str =
    "SELECT pg_advisory_xact_lock_shared(hashtextextended($1::uuid::text, 11))";
const LOCK_VIDEO: &str = "SELECT pg_advisory_xact_lock(hashtextextended($1::uuid::text, 11))";
const VIDEO_DELETED: &str = "SELECT 1 FROM engagement.deleted_videos WHERE video_id = $1";

const LIKE_VIDEO: &str = "
WITH ins AS (
    INSERT INTO engagement.likes (target_type, target_id, user_id) VALUES ('video', $1, $2)
    ON CONFLICT DO NOTHING RETURNING 1
)
INSERT INTO engagement.video_stats AS s (video_id, likes) VALUES ($1, (SELECT count(*) FROM ins))
ON CONFLICT (video_id) DO UPDATE SET likes = s.likes + EXCLUDED.likes, updated_at = now()
RETURNING s.likes, (SELECT count(*) FROM ins) AS changed";

const UNLIKE_VIDEO: &str = "
WITH del AS (
    DELETE FROM engagement.likes WHERE target_type = 'video' AND target_id = $1 AND user_id = $2
    RETURNING 1
)
INSERT INTO engagement.video_stats AS s (video_id, likes) VALUES ($1, 0)
ON CONFLICT (video_id) DO UPDATE
    SET likes = s.likes - (SELECT count(*) FROM del), updated_at = now()
RETURNING s.likes, (SELECT count(*) FROM del) AS changed";

/// `$3`: the target type; the target row is locked so its deletion waits for the like.
macro_rules! like_row_sql {
    ($table:literal, $kind:literal, $touch:literal) => {
        (
            concat!(
                "WITH target AS (SELECT id FROM engagement.",
                $table,
                " WHERE id = $1 FOR UPDATE),
                 ins AS (
                    INSERT INTO engagement.likes (target_type, target_id, user_id)
                    SELECT '",
                $kind,
                "', id, $2 FROM target
                    ON CONFLICT DO NOTHING RETURNING 1
                 )
                 UPDATE engagement.",
                $table,
                " t SET likes = t.likes + (SELECT count(*) FROM ins)",
                $touch,
                " FROM target WHERE t.id = target.id
                 RETURNING t.likes, (SELECT count(*) FROM ins) AS changed"
            ),
            concat!(
                "WITH target AS (SELECT id FROM engagement.",
                $table,
                " WHERE id = $1 FOR UPDATE),
                 del AS (
                    DELETE FROM engagement.likes l USING target
                    WHERE l.target_type = '",
                $kind,
                "' AND l.target_id = target.id AND l.user_id = $2
                    RETURNING 1
                 )
                 UPDATE engagement.",
                $table,
                " t SET likes = t.likes - (SELECT count(*) FROM del)",
                $touch,
                " FROM target WHERE t.id = target.id
                 RETURNING t.likes, (SELECT count(*) FROM del) AS changed"
            ),
        )
    };
}

/// Posts note when their likes changed, for the performance scores.
const LIKE_POST: (&str, &str) = like_row_sql!("posts", "post", ", updated_at = now()");
const LIKE_COMMENT: (&str, &str) = like_row_sql!("comments", "comment", "");

/// The `engagement` schema.
#[derive(Clone)]
pub struct Store(pub Db);

impl Store {
    /// Counts for a video; zero for a video nobody has watched or liked yet.
    pub async fn video_stats(&self, video_id: Uuid) -> Result<VideoStats, DbError> {
        Ok(self
            .video_stats_many(&[video_id])
            .await?
            .remove(&video_id)
            .unwrap_or_default())
    }

    /// Counts of several videos; those with none are left out.
    pub async fn video_stats_many(
        &self,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, VideoStats>, DbError> {
        let rows = self
            .0
            .query(
                "SELECT",
                "engagement.video_stats",
                "SELECT video_id, views, likes, comments FROM engagement.video_stats
                 WHERE video_id = ANY($1)",
                &[&ids],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    VideoStats {
                        views: count(r.get(1)),
                        likes: count(r.get(2)),
                        comments: count(r.get(3)),
                    },
                )
            })
            .collect())
    }

    /// Likes (`liked`) or unlikes `target` as `user`; idempotent both ways.
    pub async fn set_like(
        &self,
        target: Target,
        id: Uuid,
        user: Uuid,
        liked: bool,
    ) -> Result<Liked, DbError> {
        let row = match target {
            Target::Video => {
                async {
                    let mut conn = self.0.pool().get().await?;
                    let tx = conn.transaction().await?;
                    tx.execute(LOCK_VIDEO_SHARED, &[&id]).await?;
                    if tx.query_opt(VIDEO_DELETED, &[&id]).await?.is_some() {
                        return Ok::<_, DbError>(None);
                    }
                    let sql = if liked { LIKE_VIDEO } else { UNLIKE_VIDEO };
                    let row = tx.query_one(sql, &[&id, &user]).await?;
                    tx.commit().await?;
                    Ok(Some(row))
                }
                .instrument(db_span("UPSERT", "engagement.likes"))
                .await?
            }
            Target::Post | Target::Comment => {
                let (like, unlike) = if target == Target::Post {
                    LIKE_POST
                } else {
                    LIKE_COMMENT
                };
                let sql = if liked { like } else { unlike };
                self.0
                    .query_opt("UPSERT", "engagement.likes", sql, &[&id, &user])
                    .await?
            }
        };
        Ok(match row {
            Some(row) => Liked::Done {
                likes: row.get(0),
                changed: row.get::<_, i64>(1) > 0,
            },
            None => Liked::NoTarget,
        })
    }

    /// Adds a comment (a reply when `parent` is given) and counts it.
    pub async fn create_comment(
        &self,
        id: Uuid,
        video: Uuid,
        parent: Option<Uuid>,
        author: Uuid,
        body: &str,
    ) -> Result<Commented, DbError> {
        async {
            let mut conn = self.0.pool().get().await?;
            let tx = conn.transaction().await?;
            tx.execute(LOCK_VIDEO_SHARED, &[&video]).await?;
            if tx.query_opt(VIDEO_DELETED, &[&video]).await?.is_some() {
                return Ok(Commented::NoVideo);
            }
            if let Some(parent) = parent {
                let found = tx
                    .query_opt(
                        "SELECT 1 FROM engagement.comments
                         WHERE id = $1 AND video_id = $2 AND parent_id IS NULL FOR UPDATE",
                        &[&parent, &video],
                    )
                    .await?;
                if found.is_none() {
                    return Ok(Commented::NoParent);
                }
                tx.execute(
                    "UPDATE engagement.comments SET replies = replies + 1 WHERE id = $1",
                    &[&parent],
                )
                .await?;
            }
            let sql = format!(
                "INSERT INTO engagement.comments (id, video_id, parent_id, author_id, body)
                 VALUES ($1, $2, $3, $4, $5) RETURNING {COMMENT_COLUMNS}"
            );
            let row = tx
                .query_one(&sql, &[&id, &video, &parent, &author, &body])
                .await?;
            tx.execute(
                "INSERT INTO engagement.video_stats AS s (video_id, comments) VALUES ($1, 1)
                 ON CONFLICT (video_id) DO UPDATE SET comments = s.comments + 1, updated_at = now()",
                &[&video],
            )
            .await?;
            tx.commit().await?;
            Ok(Commented::Done(comment(&row)))
        }
        .instrument(db_span("INSERT", "engagement.comments"))
        .await
    }

    pub async fn comment(&self, id: Uuid) -> Result<Option<CommentRow>, DbError> {
        Ok(self
            .0
            .query_opt(
                "SELECT",
                "engagement.comments",
                &format!("SELECT {COMMENT_COLUMNS} FROM engagement.comments WHERE id = $1"),
                &[&id],
            )
            .await?
            .as_ref()
            .map(comment))
    }

    /// One page of a video's top-level comments, or of the replies to `parent`, newest
    /// first.
    pub async fn comments_page(
        &self,
        video: Uuid,
        parent: Option<Uuid>,
        size: PageSize,
        cursor: Option<Cursor>,
    ) -> Result<(Vec<CommentRow>, Option<Cursor>), DbError> {
        let limit = i64::from(size.get()) + 1;
        let (at, after) = cursor.map_or((None, Uuid::nil()), |c| (Some(c.created_at), c.id));
        let sql = format!(
            "SELECT {COMMENT_COLUMNS} FROM engagement.comments
             WHERE video_id = $1 AND parent_id IS NOT DISTINCT FROM $2
             AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4))
             ORDER BY created_at DESC, id DESC LIMIT $5"
        );
        let rows = self
            .0
            .query(
                "SELECT",
                "engagement.comments",
                &sql,
                &[&video, &parent, &at, &after, &limit],
            )
            .await?;
        Ok(split_page(
            rows.iter().map(comment).collect(),
            size,
            |c: &CommentRow| Cursor {
                created_at: c.created_at,
                id: c.id,
            },
        ))
    }

    /// Deletes a comment and its replies, their likes, and their share of the counts; how
    /// many comments went.
    pub async fn delete_comment(&self, found: &CommentRow) -> Result<u64, DbError> {
        async {
            let mut conn = self.0.pool().get().await?;
            let tx = conn.transaction().await?;
            tx.execute(LOCK_VIDEO_SHARED, &[&found.video_id]).await?;
            // Waits for replies being added to it; the next statement then sees them all.
            if tx
                .query_opt(
                    "SELECT 1 FROM engagement.comments WHERE id = $1 FOR UPDATE",
                    &[&found.id],
                )
                .await?
                .is_none()
            {
                return Ok(0);
            }
            let gone: Vec<Uuid> = tx
                .query(
                    "DELETE FROM engagement.comments WHERE id = $1 OR parent_id = $1 RETURNING id",
                    &[&found.id],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            tx.execute(
                "DELETE FROM engagement.likes WHERE target_type = 'comment' AND target_id = ANY($1)",
                &[&gone],
            )
            .await?;
            let n = i64::try_from(gone.len()).unwrap_or(i64::MAX);
            tx.execute(
                "UPDATE engagement.video_stats SET comments = greatest(comments - $2, 0),
                 updated_at = now() WHERE video_id = $1",
                &[&found.video_id, &n],
            )
            .await?;
            if let Some(parent) = found.parent_id {
                tx.execute(
                    "UPDATE engagement.comments SET replies = greatest(replies - 1, 0) WHERE id = $1",
                    &[&parent],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(gone.len() as u64)
        }
        .instrument(db_span("DELETE", "engagement.comments"))
        .await
    }

    pub async fn create_post(
        &self,
        id: Uuid,
        author: Uuid,
        body: &str,
        video: Option<Uuid>,
    ) -> Result<PostRow, DbError> {
        let row = self
            .0
            .query_one(
                "INSERT",
                "engagement.posts",
                &format!(
                    "INSERT INTO engagement.posts (id, author_id, body, video_id)
                     VALUES ($1, $2, $3, $4) RETURNING {POST_COLUMNS}"
                ),
                &[&id, &author, &body, &video],
            )
            .await?;
        Ok(post(&row))
    }

    pub async fn post(&self, id: Uuid) -> Result<Option<PostRow>, DbError> {
        Ok(self
            .0
            .query_opt(
                "SELECT",
                "engagement.posts",
                &format!("SELECT {POST_COLUMNS} FROM engagement.posts WHERE id = $1"),
                &[&id],
            )
            .await?
            .as_ref()
            .map(post))
    }

    /// Deletes `author`'s post and its likes; whether there was one.
    pub async fn delete_post(&self, id: Uuid, author: Uuid) -> Result<bool, DbError> {
        async {
            let mut conn = self.0.pool().get().await?;
            let tx = conn.transaction().await?;
            let gone = tx
                .query_opt(
                    "DELETE FROM engagement.posts WHERE id = $1 AND author_id = $2 RETURNING id",
                    &[&id, &author],
                )
                .await?
                .is_some();
            tx.execute(
                "DELETE FROM engagement.likes WHERE target_type = 'post' AND target_id = $1",
                &[&id],
            )
            .await?;
            tx.commit().await?;
            Ok(gone)
        }
        .instrument(db_span("DELETE", "engagement.posts"))
        .await
    }

    /// Up to `limit` posts of `authors`, newest first, strictly before `before`.
    pub async fn posts_of(
        &self,
        authors: &[Uuid],
        before: Option<Cursor>,
        limit: i64,
    ) -> Result<Vec<PostRow>, DbError> {
        let (at, after) = before.map_or((None, Uuid::nil()), |c| (Some(c.created_at), c.id));
        let sql = format!(
            "SELECT {POST_COLUMNS} FROM engagement.posts WHERE author_id = ANY($1)
             AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
             ORDER BY created_at DESC, id DESC LIMIT $4"
        );
        let rows = self
            .0
            .query(
                "SELECT",
                "engagement.posts",
                &sql,
                &[&authors, &at, &after, &limit],
            )
            .await?;
        Ok(rows.iter().map(post).collect())
    }

    /// Adds a batch of buffered views, once: a batch seen before is skipped. Views of
    /// deleted videos are dropped. Whether the batch was new.
    pub async fn apply_batch(&self, batch: &Batch) -> Result<bool, DbError> {
        let mut ids: Vec<Uuid> = batch.videos.keys().copied().collect();
        ids.sort_unstable();
        let views: Vec<i64> = ids.iter().map(|id| batch.videos[id].0).collect();
        let watch: Vec<f64> = ids.iter().map(|id| batch.videos[id].1).collect();
        let length: Vec<i32> = ids.iter().map(|id| batch.videos[id].2).collect();
        async {
            let mut conn = self.0.pool().get().await?;
            let tx = conn.transaction().await?;
            let new = tx
                .execute(
                    "INSERT INTO engagement.view_flushes (batch_id) VALUES ($1) ON CONFLICT DO NOTHING",
                    &[&batch.id],
                )
                .await?
                == 1;
            if !new {
                return Ok(false);
            }
            tx.execute(
                "SELECT pg_advisory_xact_lock_shared(hashtextextended(v::text, 11))
                 FROM unnest($1::uuid[]) AS v ORDER BY v",
                &[&ids],
            )
            .await?;
            tx.execute(
                "INSERT INTO engagement.video_stats AS s
                    (video_id, views, watch_seconds, duration_seconds)
                 SELECT t.v, t.n, t.w, t.d
                 FROM unnest($1::uuid[], $2::bigint[], $3::float8[], $4::int[]) AS t(v, n, w, d)
                 WHERE NOT EXISTS (
                    SELECT 1 FROM engagement.deleted_videos dv WHERE dv.video_id = t.v)
                 ON CONFLICT (video_id) DO UPDATE SET
                    views = s.views + EXCLUDED.views,
                    watch_seconds = s.watch_seconds + EXCLUDED.watch_seconds,
                    duration_seconds = EXCLUDED.duration_seconds,
                    updated_at = now()",
                &[&ids, &views, &watch, &length],
            )
            .await?;
            tx.commit().await?;
            Ok(true)
        }
        .instrument(db_span("UPSERT", "engagement.video_stats"))
        .await
    }

    /// Forgets a deleted video: its counts, likes, comments (and their likes); posts that
    /// shared it keep their text. Nothing is counted for it afterwards.
    pub async fn delete_video(&self, video: Uuid) -> Result<(), DbError> {
        async {
            let mut conn = self.0.pool().get().await?;
            let tx = conn.transaction().await?;
            tx.execute(LOCK_VIDEO, &[&video]).await?;
            tx.execute(
                "INSERT INTO engagement.deleted_videos (video_id) VALUES ($1) ON CONFLICT DO NOTHING",
                &[&video],
            )
            .await?;
            tx.execute(
                "DELETE FROM engagement.likes WHERE target_type = 'video' AND target_id = $1",
                &[&video],
            )
            .await?;
            tx.execute(
                "DELETE FROM engagement.likes WHERE target_type = 'comment' AND target_id IN
                    (SELECT id FROM engagement.comments WHERE video_id = $1)",
                &[&video],
            )
            .await?;
            tx.execute(
                "DELETE FROM engagement.comments WHERE video_id = $1",
                &[&video],
            )
            .await?;
            tx.execute(
                "DELETE FROM engagement.video_stats WHERE video_id = $1",
                &[&video],
            )
            .await?;
            tx.execute(
                "UPDATE engagement.posts SET video_id = NULL, updated_at = now() WHERE video_id = $1",
                &[&video],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        }
        .instrument(db_span("DELETE", "engagement.video_stats"))
        .await
    }

    /// Removes `user`'s likes, comments (with the replies to them) and posts, and their
    /// share of every count. What the user watched stays in the view counts: views are
    /// stored only as anonymous sums.
    pub async fn forget_user(&self, user: Uuid) -> Result<(), DbError> {
        async {
            let mut conn = self.0.pool().get().await?;
            let tx = conn.transaction().await?;
            // Likes the user gave, and the counters of what they liked.
            tx.execute(
                "WITH gone AS (
                    DELETE FROM engagement.likes WHERE user_id = $1
                    RETURNING target_type, target_id),
                 per AS (SELECT target_type, target_id, count(*) AS n FROM gone
                         GROUP BY target_type, target_id),
                 v AS (UPDATE engagement.video_stats s
                       SET likes = greatest(s.likes - per.n, 0), updated_at = now()
                       FROM per WHERE per.target_type = 'video' AND s.video_id = per.target_id
                       RETURNING 1),
                 p AS (UPDATE engagement.posts t
                       SET likes = greatest(t.likes - per.n, 0), updated_at = now()
                       FROM per WHERE per.target_type = 'post' AND t.id = per.target_id
                       RETURNING 1),
                 c AS (UPDATE engagement.comments t SET likes = greatest(t.likes - per.n, 0)
                       FROM per WHERE per.target_type = 'comment' AND t.id = per.target_id
                       RETURNING 1)
                 SELECT (SELECT count(*) FROM v), (SELECT count(*) FROM p), (SELECT count(*) FROM c)",
                &[&user],
            )
            .await?;
            // Comments by the user, and the replies under them.
            let mine: Vec<Uuid> = tx
                .query(
                    "SELECT id FROM engagement.comments WHERE author_id = $1 ORDER BY id FOR UPDATE",
                    &[&user],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            if !mine.is_empty() {
                let gone = tx
                    .query(
                        "DELETE FROM engagement.comments WHERE id = ANY($1) OR parent_id = ANY($1)
                         RETURNING id, video_id, parent_id",
                        &[&mine],
                    )
                    .await?;
                let ids: Vec<Uuid> = gone.iter().map(|r| r.get(0)).collect();
                let gone_set: HashSet<Uuid> = ids.iter().copied().collect();
                let mut per_video: HashMap<Uuid, i64> = HashMap::new();
                let mut per_parent: HashMap<Uuid, i64> = HashMap::new();
                for row in &gone {
                    *per_video.entry(row.get(1)).or_default() += 1;
                    if let Some(parent) = row.get::<_, Option<Uuid>>(2)
                        && !gone_set.contains(&parent)
                    {
                        *per_parent.entry(parent).or_default() += 1;
                    }
                }
                tx.execute(
                    "DELETE FROM engagement.likes WHERE target_type = 'comment' AND target_id = ANY($1)",
                    &[&ids],
                )
                .await?;
                let (videos, counts): (Vec<Uuid>, Vec<i64>) = per_video.into_iter().unzip();
                tx.execute(
                    "UPDATE engagement.video_stats s SET comments = greatest(s.comments - t.n, 0),
                        updated_at = now()
                     FROM unnest($1::uuid[], $2::bigint[]) AS t(v, n) WHERE s.video_id = t.v",
                    &[&videos, &counts],
                )
                .await?;
                let (parents, counts): (Vec<Uuid>, Vec<i64>) = per_parent.into_iter().unzip();
                tx.execute(
                    "UPDATE engagement.comments c SET replies = greatest(c.replies - t.n, 0)
                     FROM unnest($1::uuid[], $2::bigint[]) AS t(p, n) WHERE c.id = t.p",
                    &[&parents, &counts],
                )
                .await?;
            }
            // Posts by the user, and their likes.
            tx.execute(
                "WITH gone AS (DELETE FROM engagement.posts WHERE author_id = $1 RETURNING id)
                 DELETE FROM engagement.likes l USING gone
                 WHERE l.target_type = 'post' AND l.target_id = gone.id",
                &[&user],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        }
        .instrument(db_span("DELETE", "engagement.likes"))
        .await
    }

    /// Videos whose counts changed since `since`, with what their score needs.
    pub async fn videos_active_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<VideoActivity>, DbError> {
        let rows = self
            .0
            .query(
                "SELECT",
                "engagement.video_stats",
                "SELECT views, likes, comments, watch_seconds, duration_seconds
                 FROM engagement.video_stats WHERE updated_at >= $1",
                &[&since],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| VideoActivity {
                views: count(r.get(0)),
                likes: count(r.get(1)),
                comments: count(r.get(2)),
                watch_seconds: r.get(3),
                duration_seconds: u32::try_from(r.get::<_, i32>(4)).unwrap_or(0),
            })
            .collect())
    }

    /// Likes of the posts liked or created since `since`.
    pub async fn posts_active_since(&self, since: DateTime<Utc>) -> Result<Vec<u64>, DbError> {
        let rows = self
            .0
            .query(
                "SELECT",
                "engagement.posts",
                "SELECT likes FROM engagement.posts WHERE updated_at >= $1",
                &[&since],
            )
            .await?;
        Ok(rows.iter().map(|r| count(r.get(0))).collect())
    }

    /// Up to `limit` videos' totals (views, watch seconds) after `after`, in id order.
    pub async fn totals_page(
        &self,
        after: Uuid,
        limit: i64,
    ) -> Result<Vec<(Uuid, i64, f64)>, DbError> {
        let rows = self
            .0
            .query(
                "SELECT",
                "engagement.video_stats",
                "SELECT video_id, views, watch_seconds FROM engagement.video_stats
                 WHERE video_id > $1 ORDER BY video_id LIMIT $2",
                &[&after, &limit],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    /// Forgets flushed batch ids older than a week (a batch is retried within seconds).
    pub async fn prune_flushes(&self) -> Result<u64, DbError> {
        self.0
            .execute(
                "DELETE",
                "engagement.view_flushes",
                "DELETE FROM engagement.view_flushes WHERE flushed_at < now() - interval '7 days'",
                &[],
            )
            .await
    }
}
