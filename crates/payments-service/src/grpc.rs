//! The tonic adapter: parses protobuf into domain types, calls one use case, converts the
//! answer back. No rule lives here.

use platform::field::parse_uuid;
use platform::identity::Caller;
use proto::common::v1::Money as MoneyMsg;
use proto::payments::v1::payments_service_server::PaymentsService;
use proto::payments::v1::{
    CancelSubscriptionRequest, Earnings, EarningsLine as EarningsLineMsg, GetEarningsRequest,
    GetMySubscriptionRequest, GetRevenueSummaryRequest, Idempotency, IngestAdRevenueRequest,
    IngestAdRevenueResponse, ListPayoutsRequest, ListPayoutsResponse, ListPlansRequest,
    ListPlansResponse, Payout, Plan, RevenueLine as RevenueLineMsg, RevenueSummary,
    RunPayoutsRequest, RunPayoutsResponse, SubscribeRequest, Subscription as SubscriptionMsg,
    TransferRequest, TransferResponse,
};
use proto::serde_ext::{from_timestamp, to_timestamp};
use tonic::{Request, Response, Status};

use crate::app::{self, AdEvent, Payments};
use crate::domain::{Card, IdempotencyKey, InvalidField, Money};
use crate::error::PaymentsError;
use crate::store::Subscription;

pub struct PaymentsApi {
    app: Payments,
}

impl PaymentsApi {
    pub fn new(app: Payments) -> Self {
        Self { app }
    }
}

type Answer<T> = Result<Response<T>, Status>;

fn money(minor: i64, currency: impl Into<String>) -> MoneyMsg {
    MoneyMsg {
        amount_minor: minor,
        currency: currency.into(),
    }
}

/// The idempotency key and fingerprint every mutating call carries.
fn idempotency(raw: Option<Idempotency>) -> Result<(IdempotencyKey, Vec<u8>), PaymentsError> {
    let Idempotency { key, fingerprint } = raw.unwrap_or_default();
    let key = IdempotencyKey::parse(&key)?;
    if fingerprint.is_empty() || fingerprint.len() > 64 {
        return Err(InvalidField::new(
            "idempotency.fingerprint",
            "must be the request's digest (1 to 64 bytes)",
        )
        .into());
    }
    Ok((key, fingerprint))
}

fn subscription(s: Subscription) -> SubscriptionMsg {
    SubscriptionMsg {
        id: s.id.to_string(),
        plan_id: s.plan_id,
        status: s.status,
        current_period_start: Some(to_timestamp(s.current_period_start)),
        current_period_end: Some(to_timestamp(s.current_period_end)),
        cancel_at_period_end: s.cancel_at_period_end,
        price: Some(money(s.price_minor, s.currency)),
        payment_method_last4: s.last4,
        created_at: Some(to_timestamp(s.created_at)),
    }
}

fn time(
    field: &'static str,
    raw: Option<&prost_types::Timestamp>,
) -> Result<chrono::DateTime<chrono::Utc>, PaymentsError> {
    raw.and_then(from_timestamp)
        .filter(|t| (1970..=9999).contains(&chrono::Datelike::year(t)))
        .ok_or_else(|| InvalidField::new(field, "must be a time").into())
}

#[tonic::async_trait]
impl PaymentsService for PaymentsApi {
    async fn list_plans(&self, _request: Request<ListPlansRequest>) -> Answer<ListPlansResponse> {
        let plans = self.app.plans().await?;
        Ok(Response::new(ListPlansResponse {
            plans: plans
                .into_iter()
                .map(|p| Plan {
                    id: p.id,
                    name: p.name,
                    price: Some(money(p.price_cents, p.currency)),
                    interval: p.interval,
                })
                .collect(),
        }))
    }

    async fn subscribe(&self, request: Request<SubscribeRequest>) -> Answer<SubscriptionMsg> {
        let me = Caller::require_user(&request)?;
        let SubscribeRequest {
            idempotency: raw,
            plan_id,
            payment_method,
        } = request.into_inner();
        let (key, fingerprint) = idempotency(raw)?;
        if plan_id.is_empty() || plan_id.len() > 32 {
            return Err(PaymentsError::from(InvalidField::new("plan_id", "is required")).into());
        }
        let card = Card::parse(&payment_method).map_err(PaymentsError::from)?;
        let request = app::Request {
            caller: me,
            key: &key,
            fingerprint: &fingerprint,
        };
        let sub = self.app.subscribe(request, &plan_id, card).await?;
        Ok(Response::new(subscription(sub)))
    }

    async fn get_my_subscription(
        &self,
        request: Request<GetMySubscriptionRequest>,
    ) -> Answer<SubscriptionMsg> {
        let me = Caller::require_user(&request)?;
        Ok(Response::new(subscription(
            self.app.subscription(me).await?,
        )))
    }

    async fn cancel_subscription(
        &self,
        request: Request<CancelSubscriptionRequest>,
    ) -> Answer<SubscriptionMsg> {
        let me = Caller::require_user(&request)?;
        let (key, fingerprint) = idempotency(request.into_inner().idempotency)?;
        let request = app::Request {
            caller: me,
            key: &key,
            fingerprint: &fingerprint,
        };
        Ok(Response::new(subscription(self.app.cancel(request).await?)))
    }

    async fn ingest_ad_revenue(
        &self,
        request: Request<IngestAdRevenueRequest>,
    ) -> Answer<IngestAdRevenueResponse> {
        let admin = Caller::require_admin(&request)?;
        let IngestAdRevenueRequest {
            idempotency: raw,
            events,
        } = request.into_inner();
        let (key, fingerprint) = idempotency(raw)?;
        let mut parsed = Vec::with_capacity(events.len().min(app::MAX_AD_EVENTS));
        for (i, e) in events.into_iter().enumerate().take(app::MAX_AD_EVENTS + 1) {
            let video_id =
                parse_uuid("events.video_id", &e.video_id).map_err(PaymentsError::from)?;
            if e.kind != "impression" && e.kind != "click" {
                return Err(PaymentsError::from(InvalidField::new(
                    "events.kind",
                    format!("event {i}: must be impression or click"),
                ))
                .into());
            }
            let amount = e.amount.unwrap_or_default();
            let amount = Money::parse("events.amount", amount.amount_minor, &amount.currency)
                .map_err(PaymentsError::from)?;
            let occurred_at = match e.occurred_at {
                Some(t) => time("events.occurred_at", Some(&t))?,
                None => chrono::Utc::now(),
            };
            parsed.push(AdEvent {
                video_id,
                kind: e.kind,
                amount,
                occurred_at,
            });
        }
        let request = app::Request {
            caller: admin,
            key: &key,
            fingerprint: &fingerprint,
        };
        let accepted = u32::try_from(parsed.len()).unwrap_or(u32::MAX);
        let totals = self.app.ingest_ads(request, parsed).await?;
        Ok(Response::new(IngestAdRevenueResponse {
            accepted,
            totals: totals.into_iter().map(|(c, t)| money(t, c)).collect(),
        }))
    }

    async fn get_earnings(&self, request: Request<GetEarningsRequest>) -> Answer<Earnings> {
        let me = Caller::require_user(&request)?;
        let statement = self.app.statement(me).await?;
        Ok(Response::new(Earnings {
            balance: statement
                .balance
                .into_iter()
                .map(|(c, b)| money(b, c))
                .collect(),
            lines: statement
                .lines
                .into_iter()
                .map(|l| EarningsLineMsg {
                    period_id: l.period_id.to_string(),
                    period_start: Some(to_timestamp(l.period_start)),
                    period_end: Some(to_timestamp(l.period_end)),
                    amount: Some(money(l.amount, l.currency)),
                    watch_seconds: u64::try_from(l.watch_seconds).unwrap_or(0),
                    views: u64::try_from(l.views).unwrap_or(0),
                })
                .collect(),
        }))
    }

    async fn list_payouts(
        &self,
        request: Request<ListPayoutsRequest>,
    ) -> Answer<ListPayoutsResponse> {
        let me = Caller::require_user(&request)?;
        let payouts = self.app.payouts_of(me).await?;
        Ok(Response::new(ListPayoutsResponse {
            payouts: payouts
                .into_iter()
                .map(|p| Payout {
                    id: p.id.to_string(),
                    amount: Some(money(p.amount, p.currency)),
                    status: p.status,
                    created_at: Some(to_timestamp(p.created_at)),
                })
                .collect(),
        }))
    }

    async fn get_revenue_summary(
        &self,
        request: Request<GetRevenueSummaryRequest>,
    ) -> Answer<RevenueSummary> {
        Caller::require_admin(&request)?;
        let GetRevenueSummaryRequest { from, to } = request.into_inner();
        let from = time("from", from.as_ref())?;
        let to = time("to", to.as_ref())?;
        let lines = self.app.revenue(from, to).await?;
        Ok(Response::new(RevenueSummary {
            lines: lines
                .into_iter()
                .map(|l| RevenueLineMsg {
                    source: l.source.to_owned(),
                    amount: Some(money(l.amount, l.currency)),
                    transactions: u64::try_from(l.transactions).unwrap_or(0),
                })
                .collect(),
        }))
    }

    async fn transfer(&self, request: Request<TransferRequest>) -> Answer<TransferResponse> {
        let admin = Caller::require_admin(&request)?;
        let TransferRequest {
            idempotency: raw,
            from_account,
            to_account,
            amount,
        } = request.into_inner();
        let (key, fingerprint) = idempotency(raw)?;
        let from = parse_uuid("from_account", &from_account).map_err(PaymentsError::from)?;
        let to = parse_uuid("to_account", &to_account).map_err(PaymentsError::from)?;
        let amount = amount.unwrap_or_default();
        let amount = Money::parse("amount", amount.amount_minor, &amount.currency)
            .map_err(PaymentsError::from)?;
        let request = app::Request {
            caller: admin,
            key: &key,
            fingerprint: &fingerprint,
        };
        let journal = self.app.transfer(request, from, to, amount).await?;
        Ok(Response::new(TransferResponse {
            transaction_id: journal.to_string(),
        }))
    }

    async fn run_payouts(&self, request: Request<RunPayoutsRequest>) -> Answer<RunPayoutsResponse> {
        let admin = Caller::require_admin(&request)?;
        let (key, fingerprint) = idempotency(request.into_inner().idempotency)?;
        let request = app::Request {
            caller: admin,
            key: &key,
            fingerprint: &fingerprint,
        };
        let run = self.app.run_payouts_now(request).await?;
        Ok(Response::new(RunPayoutsResponse {
            period_id: run.period_id.to_string(),
            creators: run.creators,
            paid: run.paid.into_iter().map(|(c, t)| money(t, c)).collect(),
        }))
    }
}
