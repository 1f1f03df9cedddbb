//! SQL for schema `payments`: plans, the ledger, idempotency keys, subscriptions, ad
//! revenue and payouts. Every money movement is a journal transaction posted inside the
//! same Postgres transaction as the rows it explains and the idempotency key it answers.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use platform::database::{Db, DbError, db_span};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_postgres::Transaction;
use tracing::Instrument;
use uuid::Uuid;

use crate::domain::{Currency, IdempotencyKey};
use crate::error::{PaymentsError, Refusal};

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub id: String,
    pub name: String,
    pub price_cents: i64,
    pub currency: String,
    pub interval: String,
}

/// A ledger account's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountKind {
    PlatformRevenue,
    CreatorBalance,
    ProviderClearing,
    PayoutsPayable,
}

impl AccountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PlatformRevenue => "platform_revenue",
            Self::CreatorBalance => "creator_balance",
            Self::ProviderClearing => "provider_clearing",
            Self::PayoutsPayable => "payouts_payable",
        }
    }
}

/// The answer stored with an idempotency key: the result, or the business refusal.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub enum Answer<T> {
    Done(T),
    Refused(Refusal),
}

/// What an idempotent operation is: who, which key, which RPC, and the request's
/// fingerprint.
pub struct Scope<'a> {
    pub caller: Uuid,
    pub key: &'a IdempotencyKey,
    pub rpc: &'static str,
    pub fingerprint: &'a [u8],
}

/// One posting of a journal transaction: `amount` (debit positive, credit negative) on an
/// account.
#[derive(Debug, Clone, Copy)]
pub struct Posting {
    pub account: Uuid,
    pub amount: i64,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Subscription {
    pub id: Uuid,
    pub user_id: Uuid,
    pub plan_id: String,
    pub status: String,
    pub price_minor: i64,
    pub currency: String,
    pub last4: String,
    pub current_period_start: DateTime<Utc>,
    pub current_period_end: DateTime<Utc>,
    pub cancel_at_period_end: bool,
    pub created_at: DateTime<Utc>,
}

const SUBSCRIPTION_COLUMNS: &str = "id, user_id, plan_id, status, price_minor, currency, last4,
    current_period_start, current_period_end, cancel_at_period_end, created_at";

fn subscription(row: &tokio_postgres::Row) -> Subscription {
    Subscription {
        id: row.get("id"),
        user_id: row.get("user_id"),
        plan_id: row.get("plan_id"),
        status: row.get("status"),
        price_minor: row.get("price_minor"),
        currency: row.get::<_, String>("currency"),
        last4: row.get("last4"),
        current_period_start: row.get("current_period_start"),
        current_period_end: row.get("current_period_end"),
        cancel_at_period_end: row.get("cancel_at_period_end"),
        created_at: row.get("created_at"),
    }
}

/// A subscription due for renewal, locked by the renewal job.
#[derive(Debug, Clone)]
pub struct Due {
    pub subscription: Subscription,
    pub payment_token: String,
    pub renewals: i32,
    pub interval: String,
}

/// One earnings line of a creator.
#[derive(Debug, Clone)]
pub struct EarningsLine {
    pub period_id: Uuid,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub amount: i64,
    pub currency: String,
    pub watch_seconds: i64,
    pub views: i64,
}

#[derive(Debug, Clone)]
pub struct PayoutRow {
    pub id: Uuid,
    pub amount: i64,
    pub currency: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
}

/// Revenue of one source and currency.
#[derive(Debug, Clone, PartialEq)]
pub struct RevenueLine {
    pub source: &'static str,
    pub currency: String,
    pub amount: i64,
    pub transactions: i64,
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

    /// Runs `work` in a transaction bound to an idempotency key: a key seen before answers
    /// with its stored answer (or [`PaymentsError::KeyReused`] for another request); a key in
    /// use by a concurrent request is [`PaymentsError::KeyInUse`]; otherwise `work` runs and
    /// its answer is stored with the key in the same transaction. An error from `work`
    /// rolls everything back and stores nothing. The flag says whether `work` ran.
    pub async fn idempotent<T, F>(
        &self,
        scope: Scope<'_>,
        work: F,
    ) -> Result<(Answer<T>, bool), PaymentsError>
    where
        T: Serialize + DeserializeOwned,
        F: AsyncFnOnce(&Transaction<'_>) -> Result<Answer<T>, PaymentsError>,
    {
        let span = db_span("IDEMPOTENT", "payments.idempotency_keys");
        let mut conn = self.0.pool().get().instrument(span.clone()).await?;
        let tx = conn.transaction().instrument(span.clone()).await?;
        let locked: bool = tx
            .query_one(
                "SELECT pg_try_advisory_xact_lock(hashtextextended($1::uuid::text || ':' || $2, 29))",
                &[&scope.caller, &scope.key.as_str()],
            )
            .instrument(span.clone())
            .await?
            .get(0);
        if !locked {
            return Err(PaymentsError::KeyInUse);
        }
        if let Some(row) = tx
            .query_opt(
                "SELECT rpc, fingerprint, answer FROM payments.idempotency_keys
                 WHERE caller_id = $1 AND key = $2",
                &[&scope.caller, &scope.key.as_str()],
            )
            .instrument(span.clone())
            .await?
        {
            let (rpc, fingerprint): (String, Vec<u8>) = (row.get(0), row.get(1));
            if rpc != scope.rpc || fingerprint != scope.fingerprint {
                return Err(PaymentsError::KeyReused);
            }
            let answer: Answer<T> = serde_json::from_value(row.get(2))
                .map_err(|e| PaymentsError::Corrupt(format!("stored answer unreadable: {e}")))?;
            return Ok((answer, false));
        }
        let answer = work(&tx).await?;
        let stored = serde_json::to_value(&answer)
            .map_err(|e| PaymentsError::Corrupt(format!("answer not storable: {e}")))?;
        tx.execute(
            "INSERT INTO payments.idempotency_keys (caller_id, key, rpc, fingerprint, answer)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &scope.caller,
                &scope.key.as_str(),
                &scope.rpc,
                &scope.fingerprint,
                &stored,
            ],
        )
        .instrument(span.clone())
        .await?;
        tx.commit().instrument(span).await?;
        Ok((answer, true))
    }

    /// Forgets idempotency keys older than `hours`.
    pub async fn prune_keys(&self, hours: i64) -> Result<u64, DbError> {
        self.0
            .execute(
                "DELETE",
                "payments.idempotency_keys",
                "DELETE FROM payments.idempotency_keys
                 WHERE created_at < now() - make_interval(hours => $1::int)",
                &[&i32::try_from(hours).unwrap_or(24)],
            )
            .await
    }

    pub async fn plan(&self, id: &str) -> Result<Option<Plan>, DbError> {
        Ok(self.active_plans().await?.into_iter().find(|p| p.id == id))
    }

    pub async fn live_subscription(&self, user: Uuid) -> Result<Option<Subscription>, DbError> {
        Ok(self
            .0
            .query_opt(
                "SELECT",
                "payments.subscriptions",
                &format!(
                    "SELECT {SUBSCRIPTION_COLUMNS} FROM payments.subscriptions
                     WHERE user_id = $1 ORDER BY created_at DESC LIMIT 1"
                ),
                &[&user],
            )
            .await?
            .as_ref()
            .map(subscription))
    }

    /// Accounts of `creator` (their balances), by currency.
    pub async fn creator_balances(&self, creator: Uuid) -> Result<Vec<(String, i64)>, DbError> {
        let rows = self
            .0
            .query(
                "SELECT",
                "payments.accounts",
                "SELECT currency, balance FROM payments.accounts
                 WHERE kind = 'creator_balance' AND owner_id = $1 ORDER BY currency",
                &[&creator],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub async fn earnings(&self, creator: Uuid) -> Result<Vec<EarningsLine>, DbError> {
        let rows = self
            .0
            .query(
                "SELECT",
                "payments.earnings",
                "SELECT e.period_id, p.period_start, p.period_end, e.amount, e.currency,
                        e.watch_seconds, e.views
                 FROM payments.earnings e JOIN payments.payout_periods p ON p.id = e.period_id
                 WHERE e.creator_id = $1 ORDER BY p.period_end DESC LIMIT 100",
                &[&creator],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| EarningsLine {
                period_id: r.get(0),
                period_start: r.get(1),
                period_end: r.get(2),
                amount: r.get(3),
                currency: r.get(4),
                watch_seconds: r.get(5),
                views: r.get(6),
            })
            .collect())
    }

    pub async fn payouts(&self, creator: Uuid) -> Result<Vec<PayoutRow>, DbError> {
        let rows = self
            .0
            .query(
                "SELECT",
                "payments.payouts",
                "SELECT id, amount, currency, status, created_at FROM payments.payouts
                 WHERE creator_id = $1 ORDER BY created_at DESC LIMIT 100",
                &[&creator],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| PayoutRow {
                id: r.get(0),
                amount: r.get(1),
                currency: r.get(2),
                status: r.get(3),
                created_at: r.get(4),
            })
            .collect())
    }

    /// Revenue by source and currency over [from, to): subscription charges and ad revenue
    /// credited to the platform, and creator payouts issued.
    pub async fn revenue(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<RevenueLine>, DbError> {
        let rows = self
            .0
            .query(
                "SELECT",
                "payments.postings",
                "SELECT j.kind, p.currency, -sum(p.amount)::bigint, count(DISTINCT j.id)
                 FROM payments.journal j
                 JOIN payments.postings p ON p.journal_id = j.id
                 JOIN payments.accounts a ON a.id = p.account_id
                 WHERE j.created_at >= $1 AND j.created_at < $2
                   AND ((j.kind IN ('subscription_charge', 'ad_revenue') AND a.kind = 'platform_revenue')
                     OR (j.kind = 'payout' AND a.kind = 'payouts_payable'))
                 GROUP BY j.kind, p.currency ORDER BY j.kind, p.currency",
                &[&from, &to],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| RevenueLine {
                source: match r.get::<_, &str>(0) {
                    "subscription_charge" => "subscription",
                    "ad_revenue" => "ads",
                    _ => "creator_payout",
                },
                currency: r.get(1),
                amount: r.get(2),
                transactions: r.get(3),
            })
            .collect())
    }

    /// Journal transactions whose postings do not sum to zero, plus accounts whose balance
    /// is not the sum of their postings: 0 in a sound ledger.
    pub async fn imbalance(&self) -> Result<i64, DbError> {
        let row = self
            .0
            .query_one(
                "SELECT",
                "payments.postings",
                "SELECT
                   (SELECT count(*) FROM (SELECT 1 FROM payments.postings
                      GROUP BY journal_id, currency HAVING sum(amount) <> 0) t)
                 + (SELECT count(*) FROM payments.accounts a
                      WHERE a.balance <> coalesce((SELECT sum(p.amount) FROM payments.postings p
                                                   WHERE p.account_id = a.id), 0))",
                &[],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Subscriptions whose period has ended, locked (others skip them), oldest first.
    pub async fn due_subscriptions(
        &self,
        tx: &Transaction<'_>,
        limit: i64,
    ) -> Result<Vec<Due>, PaymentsError> {
        let rows = tx
            .query(
                &format!(
                    "SELECT {cols}, s.payment_token, s.renewals, p.interval
                     FROM payments.subscriptions s
                     JOIN payments.subscription_plans p ON p.id = s.plan_id
                     WHERE s.status = 'active' AND s.current_period_end <= now()
                     ORDER BY s.current_period_end LIMIT $1 FOR UPDATE OF s SKIP LOCKED",
                    cols = SUBSCRIPTION_COLUMNS
                        .split(',')
                        .map(|c| format!("s.{}", c.trim()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                &[&limit],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| Due {
                subscription: subscription(r),
                payment_token: r.get("payment_token"),
                renewals: r.get("renewals"),
                interval: r.get("interval"),
            })
            .collect())
    }

    pub async fn begin(&self) -> Result<deadpool_postgres::Object, PaymentsError> {
        Ok(self.0.pool().get().await?)
    }
}

// ---------------------------------------------------------------- inside a transaction

/// The account of `kind` (and `owner`, for a creator) in `currency`, created on first use.
pub async fn account(
    tx: &Transaction<'_>,
    kind: AccountKind,
    owner: Option<Uuid>,
    currency: Currency,
) -> Result<Uuid, PaymentsError> {
    tx.execute(
        "INSERT INTO payments.accounts (id, kind, owner_id, currency) VALUES ($1, $2, $3, $4)
         ON CONFLICT (kind, coalesce(owner_id, '00000000-0000-0000-0000-000000000000'::uuid), currency)
         DO NOTHING",
        &[&Uuid::new_v4(), &kind.as_str(), &owner, &currency.code()],
    )
    .await?;
    let row = tx
        .query_one(
            "SELECT id FROM payments.accounts
             WHERE kind = $1 AND owner_id IS NOT DISTINCT FROM $2 AND currency = $3",
            &[&kind.as_str(), &owner, &currency.code()],
        )
        .await?;
    Ok(row.get(0))
}

/// Posts one journal transaction and moves the balances of its accounts, in `tx`. The
/// postings must sum to zero: the database refuses the commit otherwise.
pub async fn post(
    tx: &Transaction<'_>,
    kind: &str,
    reference: &str,
    currency: Currency,
    postings: &[Posting],
) -> Result<Uuid, PaymentsError> {
    let id = Uuid::new_v4();
    tx.execute(
        "INSERT INTO payments.journal (id, kind, reference) VALUES ($1, $2, $3)",
        &[&id, &kind, &reference],
    )
    .await?;
    // In account order, so concurrent transactions lock balances in one order.
    let mut ordered = postings.to_vec();
    ordered.sort_by_key(|p| p.account);
    for p in &ordered {
        tx.execute(
            "INSERT INTO payments.postings (journal_id, account_id, amount, currency)
             VALUES ($1, $2, $3, $4)",
            &[&id, &p.account, &p.amount, &currency.code()],
        )
        .await?;
        tx.execute(
            "UPDATE payments.accounts SET balance = balance + $2 WHERE id = $1",
            &[&p.account, &p.amount],
        )
        .await?;
    }
    Ok(id)
}

/// Serialises everything `user` does to their subscriptions, for this transaction.
pub async fn lock_user(tx: &Transaction<'_>, user: Uuid) -> Result<(), PaymentsError> {
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1::uuid::text, 31))",
        &[&user],
    )
    .await?;
    Ok(())
}

pub async fn live_subscription_in(
    tx: &Transaction<'_>,
    user: Uuid,
) -> Result<Option<Subscription>, PaymentsError> {
    Ok(tx
        .query_opt(
            &format!(
                "SELECT {SUBSCRIPTION_COLUMNS} FROM payments.subscriptions
                 WHERE user_id = $1 AND status = 'active' FOR UPDATE"
            ),
            &[&user],
        )
        .await?
        .as_ref()
        .map(subscription))
}

#[expect(clippy::too_many_arguments, reason = "one row's columns")]
pub async fn insert_subscription(
    tx: &Transaction<'_>,
    id: Uuid,
    user: Uuid,
    plan: &Plan,
    token: &str,
    last4: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Subscription, PaymentsError> {
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO payments.subscriptions
                    (id, user_id, plan_id, status, price_minor, currency, payment_token, last4,
                     current_period_start, current_period_end)
                 VALUES ($1, $2, $3, 'active', $4, $5, $6, $7, $8, $9)
                 RETURNING {SUBSCRIPTION_COLUMNS}"
            ),
            &[
                &id,
                &user,
                &plan.id,
                &plan.price_cents,
                &plan.currency,
                &token,
                &last4,
                &start,
                &end,
            ],
        )
        .await?;
    Ok(subscription(&row))
}

pub async fn set_cancel_at_period_end(
    tx: &Transaction<'_>,
    id: Uuid,
) -> Result<Subscription, PaymentsError> {
    let row = tx
        .query_one(
            &format!(
                "UPDATE payments.subscriptions SET cancel_at_period_end = TRUE, updated_at = now()
                 WHERE id = $1 RETURNING {SUBSCRIPTION_COLUMNS}"
            ),
            &[&id],
        )
        .await?;
    Ok(subscription(&row))
}

/// Ends a period: renewed (next period), canceled or past due.
pub async fn close_period(
    tx: &Transaction<'_>,
    id: Uuid,
    status: &str,
    next: Option<(DateTime<Utc>, DateTime<Utc>)>,
) -> Result<(), PaymentsError> {
    match next {
        Some((start, end)) => {
            tx.execute(
                "UPDATE payments.subscriptions SET status = $2, current_period_start = $3,
                    current_period_end = $4, renewals = renewals + 1, updated_at = now()
                 WHERE id = $1",
                &[&id, &status, &start, &end],
            )
            .await?
        }
        None => {
            tx.execute(
                "UPDATE payments.subscriptions SET status = $2, updated_at = now() WHERE id = $1",
                &[&id, &status],
            )
            .await?
        }
    };
    Ok(())
}

/// A transfer's accounts, locked in id order: (id, kind, currency, balance).
pub async fn lock_accounts(
    tx: &Transaction<'_>,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, (String, String, i64)>, PaymentsError> {
    let rows = tx
        .query(
            "SELECT id, kind, currency, balance FROM payments.accounts WHERE id = ANY($1)
             ORDER BY id FOR UPDATE",
            &[&ids],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
        .collect())
}

/// One ad revenue event, attributed.
pub struct AdRow {
    pub video_id: Uuid,
    pub owner_id: Uuid,
    pub kind: String,
    pub amount: i64,
    pub occurred_at: DateTime<Utc>,
}

pub async fn insert_ad_rows(
    tx: &Transaction<'_>,
    journal: Uuid,
    currency: Currency,
    rows: &[AdRow],
) -> Result<(), PaymentsError> {
    let videos: Vec<Uuid> = rows.iter().map(|r| r.video_id).collect();
    let owners: Vec<Uuid> = rows.iter().map(|r| r.owner_id).collect();
    let kinds: Vec<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
    let amounts: Vec<i64> = rows.iter().map(|r| r.amount).collect();
    let times: Vec<DateTime<Utc>> = rows.iter().map(|r| r.occurred_at).collect();
    tx.execute(
        "INSERT INTO payments.ad_revenue
            (journal_id, video_id, owner_id, kind, amount, currency, occurred_at)
         SELECT $1, v, o, k, a, $2, t
         FROM unnest($3::uuid[], $4::uuid[], $5::text[], $6::bigint[], $7::timestamptz[])
              AS x(v, o, k, a, t)",
        &[
            &journal,
            &currency.code(),
            &videos,
            &owners,
            &kinds,
            &amounts,
            &times,
        ],
    )
    .await?;
    Ok(())
}

/// Takes the payouts lock for this transaction: one payout run at a time, across replicas.
pub async fn lock_payouts(tx: &Transaction<'_>) -> Result<(), PaymentsError> {
    tx.execute("SELECT pg_advisory_xact_lock(4242031)", &[])
        .await?;
    Ok(())
}

/// The end of the last payout period (the epoch before the first).
pub async fn last_period_end(tx: &Transaction<'_>) -> Result<DateTime<Utc>, PaymentsError> {
    let row = tx
        .query_one(
            "SELECT coalesce(max(period_end), 'epoch'::timestamptz) FROM payments.payout_periods",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// Claims for `period` every subscription and ad revenue transaction no period has taken
/// yet, and sums what they credited the platform, by currency. Claims, not times: a
/// transaction that commits while a period closes is taken by the next one.
pub async fn claim_revenue(
    tx: &Transaction<'_>,
    period: Uuid,
) -> Result<Vec<(String, i64)>, PaymentsError> {
    let rows = tx
        .query(
            "WITH claimed AS (
                INSERT INTO payments.revenue_claims (journal_id, period_id)
                SELECT j.id, $1 FROM payments.journal j
                WHERE j.kind IN ('subscription_charge', 'ad_revenue')
                  AND NOT EXISTS (SELECT 1 FROM payments.revenue_claims c WHERE c.journal_id = j.id)
                RETURNING journal_id)
             SELECT p.currency, -sum(p.amount)::bigint
             FROM claimed
             JOIN payments.postings p ON p.journal_id = claimed.journal_id
             JOIN payments.accounts a ON a.id = p.account_id
             WHERE a.kind = 'platform_revenue'
             GROUP BY p.currency",
            &[&period],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The engagement totals recorded at the end of the last period, by video.
pub async fn snapshots(tx: &Transaction<'_>) -> Result<HashMap<Uuid, (i64, f64)>, PaymentsError> {
    let rows = tx
        .query(
            "SELECT video_id, views, watch_seconds FROM payments.engagement_snapshots",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect())
}

pub async fn save_snapshots(
    tx: &Transaction<'_>,
    totals: &[(Uuid, i64, f64)],
) -> Result<(), PaymentsError> {
    let ids: Vec<Uuid> = totals.iter().map(|t| t.0).collect();
    let views: Vec<i64> = totals.iter().map(|t| t.1).collect();
    let watch: Vec<f64> = totals.iter().map(|t| t.2).collect();
    tx.execute(
        "INSERT INTO payments.engagement_snapshots (video_id, views, watch_seconds)
         SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::float8[])
         ON CONFLICT (video_id) DO UPDATE
            SET views = EXCLUDED.views, watch_seconds = EXCLUDED.watch_seconds",
        &[&ids, &views, &watch],
    )
    .await?;
    Ok(())
}

pub async fn insert_period(
    tx: &Transaction<'_>,
    id: Uuid,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<(), PaymentsError> {
    tx.execute(
        "INSERT INTO payments.payout_periods (id, period_start, period_end) VALUES ($1, $2, $3)",
        &[&id, &start, &end],
    )
    .await?;
    Ok(())
}

#[expect(clippy::too_many_arguments, reason = "one row's columns")]
pub async fn insert_earnings(
    tx: &Transaction<'_>,
    period: Uuid,
    creator: Uuid,
    currency: Currency,
    amount: i64,
    watch_seconds: i64,
    views: i64,
    journal: Uuid,
) -> Result<(), PaymentsError> {
    tx.execute(
        "INSERT INTO payments.earnings
            (period_id, creator_id, currency, amount, watch_seconds, views, journal_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &period,
            &creator,
            &currency.code(),
            &amount,
            &watch_seconds,
            &views,
            &journal,
        ],
    )
    .await?;
    Ok(())
}

/// Creator balances (credit-normal: negative when owed) in `currency`, locked.
pub async fn creator_accounts(
    tx: &Transaction<'_>,
    currency: Currency,
) -> Result<Vec<(Uuid, Uuid, i64)>, PaymentsError> {
    let rows = tx
        .query(
            "SELECT id, owner_id, balance FROM payments.accounts
             WHERE kind = 'creator_balance' AND currency = $1 AND balance < 0
             ORDER BY id FOR UPDATE",
            &[&currency.code()],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

pub async fn insert_payout(
    tx: &Transaction<'_>,
    creator: Uuid,
    amount: i64,
    currency: Currency,
    journal: Uuid,
) -> Result<(), PaymentsError> {
    tx.execute(
        "INSERT INTO payments.payouts (id, creator_id, amount, currency, status, journal_id)
         VALUES ($1, $2, $3, $4, 'issued', $5)",
        &[
            &Uuid::new_v4(),
            &creator,
            &amount,
            &currency.code(),
            &journal,
        ],
    )
    .await?;
    Ok(())
}

/// Currencies with a creator balance to pay.
pub async fn owed_currencies(tx: &Transaction<'_>) -> Result<Vec<String>, PaymentsError> {
    let rows = tx
        .query(
            "SELECT DISTINCT currency FROM payments.accounts
             WHERE kind = 'creator_balance' AND balance < 0",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
