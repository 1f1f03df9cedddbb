//! payments-service's use cases: typed arguments in (domain types, the caller), domain
//! values or a [`PaymentsError`] out. `grpc.rs` translates protobuf.
//!
//! Money moves only in ledger transactions posted in the same Postgres transaction as the
//! rows they explain and the idempotency key they answer; the revenue counters move only
//! after that transaction commits, so they can never count money the books do not have.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Months, Utc};
use serde::{Deserialize, Serialize};
use telemetry::events::Category;
use telemetry::metrics as m;
use tokio_postgres::Transaction;
use uuid::Uuid;

use crate::domain::{Card, Currency, IdempotencyKey, InvalidField, Money, Source, split_pool};
use crate::error::{PaymentsError, Refusal};
use crate::peers::Peers;
use crate::provider::{Charge, PaymentProvider, ProviderError};
use crate::store::{
    self, AccountKind, AdRow, Answer, EarningsLine, PayoutRow, Plan, Posting, RevenueLine, Scope,
    Store, Subscription,
};
use crate::{PayoutSettings, ProviderSettings};

/// An idempotent request: who, with which key, and the fingerprint of what they sent.
pub struct Request<'a> {
    pub caller: Uuid,
    pub key: &'a IdempotencyKey,
    pub fingerprint: &'a [u8],
}

impl<'a> Request<'a> {
    fn scope(&self, rpc: &'static str) -> Scope<'a> {
        Scope {
            caller: self.caller,
            key: self.key,
            rpc,
            fingerprint: self.fingerprint,
        }
    }
}

/// One ad revenue event, checked.
#[derive(Debug, Clone)]
pub struct AdEvent {
    pub video_id: Uuid,
    pub kind: String,
    pub amount: Money,
    pub occurred_at: DateTime<Utc>,
}

/// What a payout run did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PayoutRun {
    pub period_id: Uuid,
    pub creators: u32,
    /// Paid out, by currency code.
    pub paid: Vec<(String, i64)>,
    /// Each payout: (creator, amount, currency code).
    pub issued: Vec<(Uuid, i64, String)>,
}

/// A creator's statement.
#[derive(Debug, Clone)]
pub struct Statement {
    pub balance: Vec<(String, i64)>,
    pub lines: Vec<EarningsLine>,
}

/// Ad events one request may carry.
pub const MAX_AD_EVENTS: usize = 1000;

/// Revenue counters count minor units (cents for USD): exact integers, per currency, so
/// they equal the ledger's sums to the unit.
fn revenue(source: Source, currency: Currency, minor: i64) {
    metrics::counter!(m::REVENUE_TOTAL, "currency" => currency.code(), "source" => source.as_str())
        .increment(u64::try_from(minor).unwrap_or(0));
}

#[derive(Clone)]
pub struct Payments {
    store: Store,
    provider: Arc<dyn PaymentProvider>,
    peers: Peers,
    provider_settings: ProviderSettings,
    payouts: PayoutSettings,
}

impl Payments {
    pub fn new(
        store: Store,
        provider: Arc<dyn PaymentProvider>,
        peers: Peers,
        provider_settings: ProviderSettings,
        payouts: PayoutSettings,
    ) -> Self {
        Self {
            store,
            provider,
            peers,
            provider_settings,
            payouts,
        }
    }

    pub async fn plans(&self) -> Result<Vec<Plan>, PaymentsError> {
        Ok(self.store.active_plans().await?)
    }

    /// Charges through the provider, retrying a lost answer with the same key (so the card
    /// is charged once) with jittered backoff.
    async fn charge(&self, key: &str, token: &str, money: Money) -> Result<Charge, PaymentsError> {
        let timeout = Duration::from_millis(self.provider_settings.timeout_ms.max(1));
        let attempts = self.provider_settings.attempts.max(1);
        let mut last = String::new();
        for attempt in 1..=attempts {
            let outcome = tokio::time::timeout(
                timeout,
                self.provider
                    .charge(key, token, money.minor, money.currency.code()),
            )
            .await;
            let label = match &outcome {
                Ok(Ok(Charge::Succeeded { .. })) => "succeeded",
                Ok(Ok(Charge::Declined)) => "declined",
                Ok(Err(ProviderError::Timeout)) | Err(_) => "timeout",
                Ok(Err(ProviderError::Failed(_))) => "error",
            };
            metrics::counter!(m::PAYMENT_ATTEMPTS_TOTAL, "outcome" => label).increment(1);
            match outcome {
                Ok(Ok(charge)) => {
                    let event = if charge == Charge::Declined {
                        "charge_declined"
                    } else {
                        "charge_succeeded"
                    };
                    telemetry::business_event!(
                        Category::Payments,
                        event,
                        amount_minor = money.minor,
                        currency = money.currency.code(),
                        attempt
                    );
                    return Ok(charge);
                }
                Ok(Err(e)) => last = e.to_string(),
                Err(_) => last = "no answer in time".to_owned(),
            }
            if attempt == attempts {
                break;
            }
            tracing::warn!(attempt, error = %last, "charge attempt failed; retrying with the same key");
            let base = 50u64 << attempt.min(6);
            let jitter = u64::from(Uuid::new_v4().as_bytes()[0]) % base.max(1);
            tokio::time::sleep(Duration::from_millis(base + jitter)).await;
        }
        Err(PaymentsError::Provider(last))
    }

    /// Subscribes `request.caller` to `plan_id`, paying with `card`.
    pub async fn subscribe(
        &self,
        request: Request<'_>,
        plan_id: &str,
        card: Card,
    ) -> Result<Subscription, PaymentsError> {
        let me = request.caller;
        let plan = self
            .store
            .plan(plan_id)
            .await?
            .ok_or_else(|| PaymentsError::not_found("plan", plan_id))?;
        let currency = Currency::parse("plan", &plan.currency)?;
        // The provider key follows the client's key: a retry after a crash charges nothing new.
        let provider_key = format!("sub:{me}:{}", request.key.as_str());
        let (answer, fresh) = self
            .store
            .idempotent(request.scope("Subscribe"), async |tx: &Transaction<'_>| {
                store::lock_user(tx, me).await?;
                if store::live_subscription_in(tx, me).await?.is_some() {
                    return Ok(Answer::Refused(Refusal::AlreadySubscribed));
                }
                if plan.price_cents > 0 {
                    let money = Money {
                        minor: plan.price_cents,
                        currency,
                    };
                    if self.charge(&provider_key, &card.token, money).await? == Charge::Declined {
                        return Ok(Answer::Refused(Refusal::Declined));
                    }
                }
                let now = Utc::now();
                let sub = store::insert_subscription(
                    tx,
                    Uuid::new_v4(),
                    me,
                    &plan,
                    &card.token,
                    &card.last4,
                    now,
                    next_period(now, &plan.interval),
                )
                .await?;
                if plan.price_cents > 0 {
                    post_charge(tx, &sub, currency).await?;
                }
                Ok(Answer::Done(sub))
            })
            .await?;
        match answer {
            Answer::Done(sub) => {
                if fresh {
                    telemetry::business_event!(
                        Category::Payments,
                        "subscription_created",
                        user_id = %me,
                        plan_id = %sub.plan_id,
                        subscription_id = %sub.id
                    );
                    if sub.price_minor > 0 {
                        count_subscription(&sub, currency);
                    }
                }
                Ok(sub)
            }
            Answer::Refused(refusal) => Err(refusal.into()),
        }
    }

    pub async fn subscription(&self, me: Uuid) -> Result<Subscription, PaymentsError> {
        self.store
            .live_subscription(me)
            .await?
            .ok_or_else(|| PaymentsError::not_found("subscription of user", me))
    }

    /// Cancels at the end of the paid period.
    pub async fn cancel(&self, request: Request<'_>) -> Result<Subscription, PaymentsError> {
        let me = request.caller;
        let (answer, fresh) = self
            .store
            .idempotent(
                request.scope("CancelSubscription"),
                async |tx: &Transaction<'_>| {
                    store::lock_user(tx, me).await?;
                    let Some(live) = store::live_subscription_in(tx, me).await? else {
                        return Err(PaymentsError::not_found("subscription of user", me));
                    };
                    Ok(Answer::Done(
                        store::set_cancel_at_period_end(tx, live.id).await?,
                    ))
                },
            )
            .await?;
        match answer {
            Answer::Done(sub) => {
                if fresh {
                    telemetry::business_event!(
                        Category::Payments,
                        "subscription_canceled",
                        user_id = %me,
                        subscription_id = %sub.id
                    );
                }
                Ok(sub)
            }
            Answer::Refused(refusal) => Err(refusal.into()),
        }
    }

    /// Admin: ad revenue attributed to videos, their owners looked up in batches.
    pub async fn ingest_ads(
        &self,
        request: Request<'_>,
        events: Vec<AdEvent>,
    ) -> Result<Vec<(String, i64)>, PaymentsError> {
        if events.is_empty() || events.len() > MAX_AD_EVENTS {
            return Err(InvalidField::new(
                "events",
                format!(
                    "must hold 1 to {MAX_AD_EVENTS} events, got {}",
                    events.len()
                ),
            )
            .into());
        }
        let (answer, fresh) = self
            .store
            .idempotent(
                request.scope("IngestAdRevenue"),
                async |tx: &Transaction<'_>| {
                    let mut ids: Vec<Uuid> = events.iter().map(|e| e.video_id).collect();
                    ids.sort_unstable();
                    ids.dedup();
                    let owners = self.peers.owners(&ids).await?;
                    let mut by_currency: HashMap<Currency, Vec<AdRow>> = HashMap::new();
                    for (i, e) in events.iter().enumerate() {
                        let Some(owner) = owners.get(&e.video_id) else {
                            return Err(InvalidField::new(
                                "events",
                                format!("event {i}: no public video {}", e.video_id),
                            )
                            .into());
                        };
                        by_currency
                            .entry(e.amount.currency)
                            .or_default()
                            .push(AdRow {
                                video_id: e.video_id,
                                owner_id: *owner,
                                kind: e.kind.clone(),
                                amount: e.amount.minor,
                                occurred_at: e.occurred_at,
                            });
                    }
                    let mut totals = Vec::new();
                    for (currency, rows) in by_currency {
                        let total: i64 = rows.iter().map(|r| r.amount).sum();
                        let clearing =
                            store::account(tx, AccountKind::ProviderClearing, None, currency)
                                .await?;
                        let platform =
                            store::account(tx, AccountKind::PlatformRevenue, None, currency)
                                .await?;
                        let journal = store::post(
                            tx,
                            "ad_revenue",
                            request.key.as_str(),
                            currency,
                            &[
                                Posting {
                                    account: clearing,
                                    amount: total,
                                },
                                Posting {
                                    account: platform,
                                    amount: -total,
                                },
                            ],
                        )
                        .await?;
                        store::insert_ad_rows(tx, journal, currency, &rows).await?;
                        totals.push((currency.code().to_owned(), total));
                    }
                    totals.sort();
                    Ok(Answer::Done(totals))
                },
            )
            .await?;
        match answer {
            Answer::Done(totals) => {
                if fresh {
                    for (code, total) in &totals {
                        let currency = Currency::parse("currency", code)?;
                        revenue(Source::Ads, currency, *total);
                        metrics::counter!(m::REVENUE_ADS_TOTAL, "currency" => currency.code())
                            .increment(u64::try_from(*total).unwrap_or(0));
                    }
                    telemetry::business_event!(
                        Category::Payments,
                        "ad_revenue_ingested",
                        events = events.len()
                    );
                }
                Ok(totals)
            }
            Answer::Refused(refusal) => Err(refusal.into()),
        }
    }

    /// Admin: moves `amount` from one account to another (creator balances and platform
    /// revenue only); a creator balance cannot go below zero.
    pub async fn transfer(
        &self,
        request: Request<'_>,
        from: Uuid,
        to: Uuid,
        amount: Money,
    ) -> Result<Uuid, PaymentsError> {
        if from == to {
            return Err(InvalidField::new("to_account", "must differ from from_account").into());
        }
        let (answer, _) = self
            .store
            .idempotent(request.scope("Transfer"), async |tx: &Transaction<'_>| {
                let accounts = store::lock_accounts(tx, &[from, to]).await?;
                for (field, id) in [("from_account", from), ("to_account", to)] {
                    let Some((kind, currency, _)) = accounts.get(&id) else {
                        return Err(PaymentsError::not_found("account", id));
                    };
                    if currency != amount.currency.code() {
                        return Err(InvalidField::new(
                            field,
                            format!("holds {currency}, not {}", amount.currency.code()),
                        )
                        .into());
                    }
                    if kind != "creator_balance" && kind != "platform_revenue" {
                        return Err(InvalidField::new(
                            field,
                            "only creator balances and platform revenue take transfers",
                        )
                        .into());
                    }
                }
                let (kind, _, balance) = &accounts[&from];
                // Credit-normal: a creator holds -balance.
                if kind == "creator_balance" && balance.saturating_add(amount.minor) > 0 {
                    return Ok(Answer::Refused(Refusal::InsufficientFunds(
                        from.to_string(),
                    )));
                }
                let journal = store::post(
                    tx,
                    "transfer",
                    request.key.as_str(),
                    amount.currency,
                    &[
                        Posting {
                            account: from,
                            amount: amount.minor,
                        },
                        Posting {
                            account: to,
                            amount: -amount.minor,
                        },
                    ],
                )
                .await?;
                Ok(Answer::Done(journal))
            })
            .await?;
        match answer {
            Answer::Done(journal) => Ok(journal),
            Answer::Refused(refusal) => Err(refusal.into()),
        }
    }

    pub async fn statement(&self, me: Uuid) -> Result<Statement, PaymentsError> {
        let (balance, lines) =
            tokio::try_join!(self.store.creator_balances(me), self.store.earnings(me))?;
        Ok(Statement {
            // Credit-normal: what the platform owes is the negated balance.
            balance: balance.into_iter().map(|(c, b)| (c, -b)).collect(),
            lines,
        })
    }

    pub async fn payouts_of(&self, me: Uuid) -> Result<Vec<PayoutRow>, PaymentsError> {
        Ok(self.store.payouts(me).await?)
    }

    pub async fn revenue(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<RevenueLine>, PaymentsError> {
        if from >= to {
            return Err(InvalidField::new("from", "must be before `to`").into());
        }
        Ok(self.store.revenue(from, to).await?)
    }

    /// Admin: closes the payout period now.
    pub async fn run_payouts_now(&self, request: Request<'_>) -> Result<PayoutRun, PaymentsError> {
        let (answer, fresh) = self
            .store
            .idempotent(request.scope("RunPayouts"), async |tx: &Transaction<'_>| {
                Ok(Answer::Done(self.payout_period(tx).await?))
            })
            .await?;
        match answer {
            Answer::Done(run) => {
                if fresh {
                    count_payouts(&run);
                }
                Ok(run)
            }
            Answer::Refused(refusal) => Err(refusal.into()),
        }
    }

    /// The payout job: closes a period once `payouts.period_secs` have passed since the last
    /// one ended (whichever replica looks first; the others find it closed). `None` when no
    /// period is due yet.
    pub async fn run_payouts_if_due(&self) -> Result<Option<PayoutRun>, PaymentsError> {
        let mut conn = self.store.begin().await?;
        let tx = conn.transaction().await?;
        store::lock_payouts(&tx).await?;
        let last = store::last_period_end(&tx).await?;
        let period =
            chrono::Duration::seconds(i64::try_from(self.payouts.period_secs).unwrap_or(i64::MAX));
        if Utc::now() < last + period {
            return Ok(None);
        }
        let run = self.payout_period(&tx).await?;
        tx.commit().await?;
        count_payouts(&run);
        Ok(Some(run))
    }

    /// Shares the revenue of (last period end, now] among creators by the watch time their
    /// videos gained (domain::split_pool), credits their balances, and pays out every
    /// balance of at least `payouts.min_payout_minor`. One transaction.
    async fn payout_period(&self, tx: &Transaction<'_>) -> Result<PayoutRun, PaymentsError> {
        store::lock_payouts(tx).await?;
        let start = store::last_period_end(tx).await?;
        let end = Utc::now();
        let totals = self.peers.video_totals().await?;
        let snapshots = store::snapshots(tx).await?;
        let mut gained: HashMap<Uuid, (i64, f64)> = HashMap::new();
        for (video, views, watch) in &totals {
            let (v0, w0) = snapshots.get(video).copied().unwrap_or((0, 0.0));
            let (dv, dw) = ((views - v0).max(0), (watch - w0).max(0.0));
            if dv > 0 || dw > 0.0 {
                gained.insert(*video, (dv, dw));
            }
        }
        let ids: Vec<Uuid> = gained.keys().copied().collect();
        let owners = self.peers.owners(&ids).await?;
        let mut per_creator: HashMap<Uuid, (u64, u64)> = HashMap::new();
        for (video, (dv, dw)) in &gained {
            if let Some(owner) = owners.get(video) {
                let entry = per_creator.entry(*owner).or_default();
                entry.0 += dw.round() as u64;
                entry.1 += u64::try_from(*dv).unwrap_or(0);
            }
        }
        let mut weights: Vec<(Uuid, u64, u64)> =
            per_creator.iter().map(|(c, (w, v))| (*c, *w, *v)).collect();
        weights.sort_by_key(|w| w.0);

        let period = Uuid::new_v4();
        store::insert_period(tx, period, start, end).await?;
        let mut creators = std::collections::HashSet::new();
        for (code, revenue) in store::claim_revenue(tx, period).await? {
            let currency = Currency::parse("currency", &code)?;
            let platform = store::account(tx, AccountKind::PlatformRevenue, None, currency).await?;
            for (creator, share) in split_pool(revenue, self.payouts.creator_share_bps, &weights) {
                let account =
                    store::account(tx, AccountKind::CreatorBalance, Some(creator), currency)
                        .await?;
                let journal = store::post(
                    tx,
                    "creator_share",
                    &period.to_string(),
                    currency,
                    &[
                        Posting {
                            account: platform,
                            amount: share,
                        },
                        Posting {
                            account,
                            amount: -share,
                        },
                    ],
                )
                .await?;
                let (watch, views) = per_creator.get(&creator).copied().unwrap_or_default();
                store::insert_earnings(
                    tx,
                    period,
                    creator,
                    currency,
                    share,
                    i64::try_from(watch).unwrap_or(i64::MAX),
                    i64::try_from(views).unwrap_or(i64::MAX),
                    journal,
                )
                .await?;
                creators.insert(creator);
            }
        }
        let mut paid = Vec::new();
        let mut issued = Vec::new();
        for code in store::owed_currencies(tx).await? {
            let currency = Currency::parse("currency", &code)?;
            let payable = store::account(tx, AccountKind::PayoutsPayable, None, currency).await?;
            let mut total = 0;
            for (account, creator, balance) in store::creator_accounts(tx, currency).await? {
                let owed = -balance;
                if owed < self.payouts.min_payout_minor.max(1) {
                    continue;
                }
                let journal = store::post(
                    tx,
                    "payout",
                    &period.to_string(),
                    currency,
                    &[
                        Posting {
                            account,
                            amount: owed,
                        },
                        Posting {
                            account: payable,
                            amount: -owed,
                        },
                    ],
                )
                .await?;
                store::insert_payout(tx, creator, owed, currency, journal).await?;
                issued.push((creator, owed, code.clone()));
                total += owed;
            }
            if total > 0 {
                paid.push((code, total));
            }
        }
        store::save_snapshots(tx, &totals).await?;
        Ok(PayoutRun {
            period_id: period,
            creators: u32::try_from(creators.len()).unwrap_or(u32::MAX),
            paid,
            issued,
        })
    }

    /// Renews, cancels or marks past due one subscription whose period has ended; whether
    /// there was one.
    pub async fn renew_one(&self) -> Result<bool, PaymentsError> {
        let mut conn = self.store.begin().await?;
        let tx = conn.transaction().await?;
        let Some(due) = self.store.due_subscriptions(&tx, 1).await?.pop() else {
            return Ok(false);
        };
        let sub = &due.subscription;
        let currency = Currency::parse("currency", &sub.currency)?;
        let mut charged = false;
        let mut renewed = false;
        if sub.cancel_at_period_end {
            store::close_period(&tx, sub.id, "canceled", None).await?;
        } else {
            let ok = if sub.price_minor == 0 {
                true
            } else {
                let key = format!("renew:{}:{}", sub.id, due.renewals + 1);
                let money = Money {
                    minor: sub.price_minor,
                    currency,
                };
                matches!(
                    self.charge(&key, &due.payment_token, money).await?,
                    Charge::Succeeded { .. }
                )
            };
            if ok {
                let start = sub.current_period_end;
                let end = next_period(start, &due.interval);
                store::close_period(&tx, sub.id, "active", Some((start, end))).await?;
                renewed = true;
                if sub.price_minor > 0 {
                    post_charge(&tx, sub, currency).await?;
                    charged = true;
                }
            } else {
                store::close_period(&tx, sub.id, "past_due", None).await?;
            }
        }
        tx.commit().await?;
        if charged {
            count_subscription(sub, currency);
        }
        telemetry::business_event!(
            Category::Payments,
            if renewed {
                "subscription_renewed"
            } else {
                "subscription_ended"
            },
            user_id = %sub.user_id,
            subscription_id = %sub.id
        );
        Ok(true)
    }

    pub async fn ledger_imbalance(&self) -> Result<i64, PaymentsError> {
        Ok(self.store.imbalance().await?)
    }

    pub async fn prune_keys(&self, hours: i64) -> Result<u64, PaymentsError> {
        Ok(self.store.prune_keys(hours).await?)
    }
}

/// The end of a period that starts at `start`: a month or a year on.
fn next_period(start: DateTime<Utc>, interval: &str) -> DateTime<Utc> {
    let months = if interval == "year" { 12 } else { 1 };
    start
        .checked_add_months(Months::new(months))
        .unwrap_or(start)
}

/// A subscription's charge in the ledger: the provider owes us, the platform earned it.
async fn post_charge(
    tx: &Transaction<'_>,
    sub: &Subscription,
    currency: Currency,
) -> Result<Uuid, PaymentsError> {
    let clearing = store::account(tx, AccountKind::ProviderClearing, None, currency).await?;
    let platform = store::account(tx, AccountKind::PlatformRevenue, None, currency).await?;
    store::post(
        tx,
        "subscription_charge",
        &sub.id.to_string(),
        currency,
        &[
            Posting {
                account: clearing,
                amount: sub.price_minor,
            },
            Posting {
                account: platform,
                amount: -sub.price_minor,
            },
        ],
    )
    .await
}

fn count_subscription(sub: &Subscription, currency: Currency) {
    revenue(Source::Subscription, currency, sub.price_minor);
    metrics::counter!(
        m::REVENUE_SUBSCRIPTIONS_TOTAL,
        "plan_id" => sub.plan_id.clone(),
        "currency" => currency.code()
    )
    .increment(u64::try_from(sub.price_minor).unwrap_or(0));
}

/// After the payout transaction committed: the counters and the event lines.
fn count_payouts(run: &PayoutRun) {
    for (creator, amount, currency) in &run.issued {
        telemetry::business_event!(
            Category::Payments,
            "payout_issued",
            user_id = %creator,
            amount_minor = *amount,
            currency = %currency
        );
    }
    for (code, total) in &run.paid {
        if let Ok(currency) = Currency::parse("currency", code) {
            revenue(Source::CreatorPayout, currency, *total);
            metrics::counter!(m::REVENUE_CREATOR_PAYOUTS_TOTAL, "currency" => currency.code())
                .increment(u64::try_from(*total).unwrap_or(0));
        }
    }
}
