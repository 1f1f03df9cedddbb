//! SQL for schema `videos`.

use chrono::{DateTime, Utc};
use platform::database::{Db, DbError};
use tokio_postgres::Row;
use uuid::Uuid;

use platform::pagination::{Cursor, PageSize, split_page};

use crate::domain::VideoStatus;

#[derive(Debug, Clone, PartialEq)]
pub struct Video {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub title: String,
    pub description: String,
    pub duration_seconds: u32,
    pub status: VideoStatus,
    pub tags: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// The columns of a [`Video`], as a literal so every query built on it is a constant.
macro_rules! columns {
    () => {
        "id, owner_id, title, description, duration_seconds, status, tags, created_at"
    };
}

fn video(row: &Row) -> Video {
    Video {
        id: row.get("id"),
        owner_id: row.get("owner_id"),
        title: row.get("title"),
        description: row.get("description"),
        duration_seconds: u32::try_from(row.get::<_, i32>("duration_seconds")).unwrap_or(0),
        // The schema's CHECK constraint admits only the statuses `parse` knows.
        status: VideoStatus::parse(row.get("status")).unwrap_or(VideoStatus::Failed),
        tags: row.get("tags"),
        created_at: row.get("created_at"),
    }
}

/// The `videos` schema.
#[derive(Clone)]
pub struct Store(pub Db);

impl Store {
    pub async fn video(&self, id: Uuid) -> Result<Option<Video>, DbError> {
        let sql = concat!("SELECT ", columns!(), " FROM videos.videos WHERE id = $1");
        let row = self
            .0
            .query_opt("SELECT", "videos.videos", sql, &[&id])
            .await?;
        Ok(row.as_ref().map(video))
    }

    /// One page of published videos, newest first, after `cursor`; and the cursor of the
    /// next page when there is one.
    pub async fn published_page(
        &self,
        size: PageSize,
        cursor: Option<Cursor>,
    ) -> Result<(Vec<Video>, Option<Cursor>), DbError> {
        let limit = i64::from(size.get()) + 1;
        let rows = match cursor {
            None => {
                let sql = concat!(
                    "SELECT ",
                    columns!(),
                    " FROM videos.videos WHERE status = 'published'
                     ORDER BY created_at DESC, id DESC LIMIT $1"
                );
                self.0
                    .query("SELECT", "videos.videos", sql, &[&limit])
                    .await?
            }
            Some(c) => {
                let sql = concat!(
                    "SELECT ",
                    columns!(),
                    " FROM videos.videos WHERE status = 'published'
                     AND (created_at, id) < ($1, $2)
                     ORDER BY created_at DESC, id DESC LIMIT $3"
                );
                self.0
                    .query(
                        "SELECT",
                        "videos.videos",
                        sql,
                        &[&c.created_at, &c.id, &limit],
                    )
                    .await?
            }
        };
        Ok(split_page(rows.iter().map(video).collect(), size, |v| {
            Cursor {
                created_at: v.created_at,
                id: v.id,
            }
        }))
    }
}
