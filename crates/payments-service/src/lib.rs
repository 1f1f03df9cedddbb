//! payments-service: subscriptions, ad revenue and creator payouts on a double-entry
//! ledger with idempotency keys (schema `payments`). Asks video-service who owns a video
//! and engagement-service how much each was watched.

mod app;
mod domain;
mod error;
mod grpc;
mod peers;
mod provider;
mod store;

use std::sync::Arc;
use std::time::Duration;

use platform::config::{GrpcClientSettings, InternalAuthSettings};
use platform::service::{Parts, Shared};
use platform::worker::Worker;
use proto::payments::v1::payments_service_server::PaymentsServiceServer as Server;
use serde::Deserialize;
use telemetry::metrics as m;

/// Where a service this one calls listens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerSettings {
    /// gRPC URL, e.g. `http://video-service:50052`.
    pub url: String,
}

/// Calls to the payment provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// How long one charge attempt may take, in milliseconds.
    pub timeout_ms: u64,
    /// Attempts per charge (same provider idempotency key each time).
    pub attempts: u32,
}

/// Subscription renewals.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionSettings {
    /// How often the renewal job looks for ended periods, in seconds.
    pub renew_interval_secs: u64,
}

/// Creator payouts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayoutSettings {
    /// Length of a payout period, in seconds (a day).
    pub period_secs: u64,
    /// Creators' share of a period's subscription and ad revenue, in basis points.
    pub creator_share_bps: u32,
    /// Smallest balance paid out, in minor units; smaller ones wait for the next period.
    pub min_payout_minor: i64,
}

/// Idempotency keys and the ledger check.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerSettings {
    /// How long an idempotency key and its answer are kept, in hours.
    pub idempotency_retention_hours: i64,
    /// How often `ledger_imbalance` is recomputed, in seconds.
    pub check_interval_secs: u64,
}

platform::grpc_service! {
    pub struct Service: "payments-service", schema "payments", build build,
    defaults include_str!("../config/default.toml"),
    settings {
        videos: PeerSettings,
        engagement: PeerSettings,
        grpc_client: GrpcClientSettings,
        provider: ProviderSettings,
        subscriptions: SubscriptionSettings,
        payouts: PayoutSettings,
        ledger: LedgerSettings,
        auth: InternalAuthSettings,
    },
    migrations [
        (1, "plans", include_str!("../migrations/0001_plans.sql")),
        (2, "ledger", include_str!("../migrations/0002_ledger.sql")),
    ]
}

/// Repeats `job` every `every` until the process drains.
fn periodic<F, Fut>(name: &'static str, every: Duration, job: F) -> Worker
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    Worker::new(name, move |mut draining| async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = draining.wait() => return Ok(()),
                _ = tick.tick() => job().await,
            }
        }
    })
}

async fn build(settings: &Settings, shared: &Shared) -> anyhow::Result<Parts> {
    settings.grpc_client.validate()?;
    metrics::gauge!(m::LEDGER_IMBALANCE).set(0.0);
    // The series start at 0, so rate() sees the first amount after a restart (plans are
    // priced in USD; other currencies appear with their first amount).
    for outcome in ["succeeded", "declined", "timeout", "error"] {
        metrics::counter!(m::PAYMENT_ATTEMPTS_TOTAL, "outcome" => outcome).increment(0);
    }
    for source in ["subscription", "ads", "creator_payout"] {
        metrics::counter!(m::REVENUE_TOTAL, "currency" => "USD", "source" => source).increment(0);
    }
    metrics::counter!(m::REVENUE_ADS_TOTAL, "currency" => "USD").increment(0);
    metrics::counter!(m::REVENUE_CREATOR_PAYOUTS_TOTAL, "currency" => "USD").increment(0);
    let channel = |url: &str, key: &str| {
        platform::grpc::channel(url, key, &shared.identity, &settings.grpc_client)
    };
    let peers = peers::Peers::new(
        channel(&settings.videos.url, "videos.url")?,
        channel(&settings.engagement.url, "engagement.url")?,
    );
    let store = store::Store(shared.db.clone());
    // The sandbox provider has a pool of its own: charges happen while the operation's
    // transaction holds a connection of the main pool, so sharing it could starve both.
    let sandbox_pool = platform::database::pool(&platform::config::DatabaseSettings {
        max_connections: 4,
        ..settings.database.clone()
    })?;
    let provider = Arc::new(provider::Sandbox::new(platform::database::Db::new(
        sandbox_pool,
    )));
    let app = app::Payments::new(
        store,
        provider,
        peers,
        settings.provider.clone(),
        settings.payouts.clone(),
    );

    let renewals = app.clone();
    let payouts = app.clone();
    let checker = app.clone();
    let retention = settings.ledger.idempotency_retention_hours.max(1);
    Ok(Parts::grpc(
        Server::new(grpc::PaymentsApi::new(app)).max_decoding_message_size(shared.max_message_bytes()),
    )
    .with_worker(periodic(
        "subscription-renewals",
        Duration::from_secs(settings.subscriptions.renew_interval_secs.max(1)),
        move || {
            let app = renewals.clone();
            async move {
                loop {
                    match app.renew_one().await {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "renewal failed; retrying next round");
                            break;
                        }
                    }
                }
            }
        },
    ))
    .with_worker(periodic(
        "creator-payouts",
        // Looks every minute (sooner for short periods) whether a period is due.
        Duration::from_secs(settings.payouts.period_secs.clamp(1, 60)),
        move || {
            let app = payouts.clone();
            async move {
                match app.run_payouts_if_due().await {
                    Ok(Some(run)) => tracing::info!(period_id = %run.period_id, creators = run.creators, "payout period closed"),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "payout period not closed; retrying"),
                }
            }
        },
    ))
    .with_worker(periodic(
        "ledger-check",
        Duration::from_secs(settings.ledger.check_interval_secs.max(1)),
        move || {
            let app = checker.clone();
            async move {
                match app.ledger_imbalance().await {
                    Ok(n) => {
                        if n != 0 {
                            tracing::error!(imbalance = n, "the ledger does not balance");
                        }
                        metrics::gauge!(m::LEDGER_IMBALANCE).set(n as f64);
                    }
                    Err(e) => tracing::warn!(error = %e, "ledger check failed"),
                }
                if let Err(e) = app.prune_keys(retention).await {
                    tracing::warn!(error = %e, "old idempotency keys not pruned");
                }
            }
        },
    )))
}
