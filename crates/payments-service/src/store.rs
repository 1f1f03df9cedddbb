//! SQL for schema `payments`.

use platform::database::{DbError, PgPool, db_span};
use tracing::Instrument;

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub id: String,
    pub name: String,
    pub price_cents: i64,
    pub currency: String,
    pub interval: String,
}

#[derive(Clone)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Active plans, cheapest first.
    pub async fn active_plans(&self) -> Result<Vec<Plan>, DbError> {
        async {
            let conn = self.pool.get().await?;
            let stmt = conn
                .prepare_cached(
                    "SELECT id, name, price_cents, currency, interval
                     FROM payments.subscription_plans WHERE active
                     ORDER BY price_cents, id",
                )
                .await?;
            Ok(conn
                .query(&stmt, &[])
                .await?
                .iter()
                .map(|row| Plan {
                    id: row.get(0),
                    name: row.get(1),
                    price_cents: row.get(2),
                    currency: row.get(3),
                    interval: row.get(4),
                })
                .collect())
        }
        .instrument(db_span("SELECT", "payments.subscription_plans"))
        .await
    }
}
