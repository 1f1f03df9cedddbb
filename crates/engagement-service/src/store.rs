//! SQL for schema `engagement`.

use platform::database::{Db, DbError};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoStats {
    pub views: u64,
    pub likes: u64,
}

/// The `engagement` schema.
#[derive(Clone)]
pub struct Store(pub Db);

impl Store {
    /// Counts for a video; zero for a video nobody has watched or liked yet.
    pub async fn video_stats(&self, video_id: Uuid) -> Result<VideoStats, DbError> {
        let row = self
            .0
            .query_opt(
                "SELECT",
                "engagement.video_stats",
                "SELECT views, likes FROM engagement.video_stats WHERE video_id = $1",
                &[&video_id],
            )
            .await?;
        Ok(
            row.map_or(VideoStats { views: 0, likes: 0 }, |row| VideoStats {
                views: u64::try_from(row.get::<_, i64>(0)).unwrap_or(0),
                likes: u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
            }),
        )
    }

    /// Forgets a video's counts; nothing to forget is fine.
    pub async fn delete_video_stats(&self, video_id: Uuid) -> Result<(), DbError> {
        self.0
            .execute(
                "DELETE",
                "engagement.video_stats",
                "DELETE FROM engagement.video_stats WHERE video_id = $1",
                &[&video_id],
            )
            .await?;
        Ok(())
    }
}
