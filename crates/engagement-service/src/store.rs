//! SQL for schema `engagement`.

use platform::database::{DbError, PgPool, db_span};
use tracing::Instrument;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoStats {
    pub views: u64,
    pub likes: u64,
}

#[derive(Clone)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Counts for a video; zero for a video nobody has watched or liked yet.
    pub async fn video_stats(&self, video_id: Uuid) -> Result<VideoStats, DbError> {
        async {
            let conn = self.pool.get().await?;
            let stmt = conn
                .prepare_cached(
                    "SELECT views, likes FROM engagement.video_stats WHERE video_id = $1",
                )
                .await?;
            let row = conn.query_opt(&stmt, &[&video_id]).await?;
            Ok(
                row.map_or(VideoStats { views: 0, likes: 0 }, |row| VideoStats {
                    views: u64::try_from(row.get::<_, i64>(0)).unwrap_or(0),
                    likes: u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
                }),
            )
        }
        .instrument(db_span("SELECT", "engagement.video_stats"))
        .await
    }
}
