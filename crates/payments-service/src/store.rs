//! SQL for schema `payments`.

use platform::database::{Db, DbError};

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub id: String,
    pub name: String,
    pub price_cents: i64,
    pub currency: String,
    pub interval: String,
}

/// The `payments` schema.
#[derive(Clone)]
pub struct Store(pub Db);

impl Store {
    /// Active plans, cheapest first.
    pub async fn active_plans(&self) -> Result<Vec<Plan>, DbError> {
        let rows = self
            .0
            .query(
                "SELECT",
                "payments.subscription_plans",
                "SELECT id, name, price_cents, currency, interval
                 FROM payments.subscription_plans WHERE active
                 ORDER BY price_cents, id",
                &[],
            )
            .await?;
        Ok(rows
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
}
