//! Subscriptions, earnings and payouts, and the admin money routes: payments-service
//! behind REST. Every mutating route takes an `Idempotency-Key` header (required): the key
//! and a fingerprint of the request (method, path and the JSON body, keys sorted) go to
//! payments-service, which stores the first answer with them.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use proto::common::v1::Money;
use proto::payments::v1::{
    AdRevenueEvent, CancelSubscriptionRequest, GetEarningsRequest, GetMySubscriptionRequest,
    GetRevenueSummaryRequest, Idempotency, IngestAdRevenueRequest, ListPayoutsRequest,
    RunPayoutsRequest, SubscribeRequest, TransferRequest,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::parse_id;
use crate::Clients;
use crate::edge::{Admin, Authenticated};
use crate::error::ApiError;

const PAYMENTS: &str = "payments-service";

/// The header naming an operation, so that a retry is recognised as one.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// The request's idempotency: its key, and the digest of what it asks.
fn idempotency(req: &HttpRequest, body: Option<&Value>) -> Result<Idempotency, ApiError> {
    // Its rules (required, 1 to 255 printable ASCII) are payments-service's: a missing or
    // bad key comes back as a 400 naming `idempotency_key`.
    let key = match req.headers().get(IDEMPOTENCY_KEY) {
        None => String::new(),
        Some(value) => value
            .to_str()
            .map_err(|_| {
                ApiError::bad_request("the Idempotency-Key header must be printable ASCII")
            })?
            .to_owned(),
    };
    let mut digest = Sha256::new();
    digest.update(req.method().as_str().as_bytes());
    digest.update(b" ");
    digest.update(req.path().as_bytes());
    digest.update(b"\n");
    // serde_json's maps are sorted: the same JSON in another spelling is the same request.
    if let Some(body) = body {
        digest.update(body.to_string().as_bytes());
    }
    Ok(Idempotency {
        key,
        fingerprint: digest.finalize().to_vec(),
    })
}

/// A JSON body as the route's type, with a 400 naming what is wrong.
fn typed<T: DeserializeOwned>(body: &Value) -> Result<T, ApiError> {
    serde_json::from_value(body.clone())
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// A payments answer in the API's words: declines are 402, a reused key 422, a key in use
/// 409.
fn error(status: &tonic::Status) -> ApiError {
    match platform::grpc::reason(status).as_deref() {
        Some("PAYMENT_DECLINED") => ApiError::new(
            StatusCode::PAYMENT_REQUIRED,
            "payment_declined",
            status.message(),
        ),
        Some("IDEMPOTENCY_KEY_REUSED") => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            status.message(),
        ),
        Some("IDEMPOTENCY_KEY_IN_USE") => ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_key_in_use",
            status.message(),
        ),
        Some("INSUFFICIENT_FUNDS") => {
            ApiError::new(StatusCode::CONFLICT, "insufficient_funds", status.message())
        }
        _ => ApiError::from_status(PAYMENTS, status),
    }
}

fn money_json(m: Option<Money>) -> Value {
    let m = m.unwrap_or_default();
    json!({ "amount_minor": m.amount_minor, "currency": m.currency })
}

fn time_json(t: Option<&prost_types::Timestamp>) -> Value {
    t.and_then(proto::serde_ext::from_timestamp)
        .map(|t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)))
        .unwrap_or(Value::Null)
}

fn subscription_json(s: proto::payments::v1::Subscription) -> Value {
    json!({
        "id": s.id,
        "plan_id": s.plan_id,
        "status": s.status,
        "price": money_json(s.price),
        "current_period_start": time_json(s.current_period_start.as_ref()),
        "current_period_end": time_json(s.current_period_end.as_ref()),
        "cancel_at_period_end": s.cancel_at_period_end,
        "payment_method_last4": s.payment_method_last4,
        "created_at": time_json(s.created_at.as_ref()),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSubscription {
    plan_id: String,
    payment_method: String,
}

/// `POST /subscriptions`: subscribes the caller, charging the plan's price.
pub async fn subscribe(
    req: HttpRequest,
    me: Authenticated,
    clients: web::Data<Clients>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let idempotency = idempotency(&req, Some(&body))?;
    let NewSubscription {
        plan_id,
        payment_method,
    } = typed(&body)?;
    let sub = clients
        .payments
        .clone()
        .subscribe(me.request(SubscribeRequest {
            idempotency: Some(idempotency),
            plan_id,
            payment_method,
        }))
        .await
        .map_err(|s| error(&s))?
        .into_inner();
    Ok(HttpResponse::Created().json(subscription_json(sub)))
}

pub async fn my_subscription(
    me: Authenticated,
    clients: web::Data<Clients>,
) -> Result<HttpResponse, ApiError> {
    let sub = clients
        .payments
        .clone()
        .get_my_subscription(me.request(GetMySubscriptionRequest {}))
        .await
        .map_err(|s| error(&s))?
        .into_inner();
    Ok(HttpResponse::Ok().json(subscription_json(sub)))
}

/// `DELETE /me/subscription`: cancels at the end of the paid period.
pub async fn cancel_subscription(
    req: HttpRequest,
    me: Authenticated,
    clients: web::Data<Clients>,
) -> Result<HttpResponse, ApiError> {
    let idempotency = idempotency(&req, None)?;
    let sub = clients
        .payments
        .clone()
        .cancel_subscription(me.request(CancelSubscriptionRequest {
            idempotency: Some(idempotency),
        }))
        .await
        .map_err(|s| error(&s))?
        .into_inner();
    Ok(HttpResponse::Ok().json(subscription_json(sub)))
}

pub async fn earnings(
    me: Authenticated,
    clients: web::Data<Clients>,
) -> Result<HttpResponse, ApiError> {
    let reply = clients
        .payments
        .clone()
        .get_earnings(me.request(GetEarningsRequest {}))
        .await
        .map_err(|s| error(&s))?
        .into_inner();
    let lines: Vec<Value> = reply
        .lines
        .into_iter()
        .map(|l| {
            json!({
                "period_id": l.period_id,
                "period_start": time_json(l.period_start.as_ref()),
                "period_end": time_json(l.period_end.as_ref()),
                "amount": money_json(l.amount),
                "watch_seconds": l.watch_seconds,
                "views": l.views,
            })
        })
        .collect();
    let balance: Vec<Value> = reply
        .balance
        .into_iter()
        .map(|m| money_json(Some(m)))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "balance": balance, "lines": lines })))
}

pub async fn payouts(
    me: Authenticated,
    clients: web::Data<Clients>,
) -> Result<HttpResponse, ApiError> {
    let reply = clients
        .payments
        .clone()
        .list_payouts(me.request(ListPayoutsRequest {}))
        .await
        .map_err(|s| error(&s))?
        .into_inner();
    let payouts: Vec<Value> = reply
        .payouts
        .into_iter()
        .map(|p| {
            json!({
                "id": p.id,
                "amount": money_json(p.amount),
                "status": p.status,
                "created_at": time_json(p.created_at.as_ref()),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "payouts": payouts })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdEventJson {
    video_id: String,
    kind: String,
    amount_minor: i64,
    currency: String,
    occurred_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdBatch {
    events: Vec<AdEventJson>,
}

/// `POST /admin/ad-revenue`: a batch of impression and click revenue.
pub async fn ingest_ads(
    req: HttpRequest,
    admin: Admin,
    clients: web::Data<Clients>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let idempotency = idempotency(&req, Some(&body))?;
    let AdBatch { events } = typed(&body)?;
    let mut parsed = Vec::with_capacity(events.len());
    for e in events {
        parsed.push(AdRevenueEvent {
            video_id: parse_id("video_id", &e.video_id)?.to_string(),
            kind: e.kind,
            amount: Some(Money {
                amount_minor: e.amount_minor,
                currency: e.currency,
            }),
            occurred_at: e.occurred_at.map(proto::serde_ext::to_timestamp),
        });
    }
    let reply = clients
        .payments
        .clone()
        .ingest_ad_revenue(admin.request(IngestAdRevenueRequest {
            idempotency: Some(idempotency),
            events: parsed,
        }))
        .await
        .map_err(|s| error(&s))?
        .into_inner();
    let totals: Vec<Value> = reply
        .totals
        .into_iter()
        .map(|m| money_json(Some(m)))
        .collect();
    Ok(HttpResponse::Created().json(json!({ "accepted": reply.accepted, "totals": totals })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevenueParams {
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
}

/// `GET /admin/revenue?from=&to=` (RFC 3339 times): revenue by source and currency.
pub async fn revenue(
    admin: Admin,
    clients: web::Data<Clients>,
    params: web::Query<RevenueParams>,
) -> Result<HttpResponse, ApiError> {
    let reply = clients
        .payments
        .clone()
        .get_revenue_summary(admin.request(GetRevenueSummaryRequest {
            from: Some(proto::serde_ext::to_timestamp(params.from)),
            to: Some(proto::serde_ext::to_timestamp(params.to)),
        }))
        .await
        .map_err(|s| error(&s))?
        .into_inner();
    let lines: Vec<Value> = reply
        .lines
        .into_iter()
        .map(|l| {
            json!({
                "source": l.source,
                "amount": money_json(l.amount),
                "transactions": l.transactions,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "lines": lines })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferJson {
    from_account: String,
    to_account: String,
    amount_minor: i64,
    currency: String,
}

/// `POST /admin/transfers`: moves money between two ledger accounts.
pub async fn transfer(
    req: HttpRequest,
    admin: Admin,
    clients: web::Data<Clients>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let idempotency = idempotency(&req, Some(&body))?;
    let t: TransferJson = typed(&body)?;
    let reply = clients
        .payments
        .clone()
        .transfer(admin.request(TransferRequest {
            idempotency: Some(idempotency),
            from_account: parse_id("from_account", &t.from_account)?.to_string(),
            to_account: parse_id("to_account", &t.to_account)?.to_string(),
            amount: Some(Money {
                amount_minor: t.amount_minor,
                currency: t.currency,
            }),
        }))
        .await
        .map_err(|s| error(&s))?
        .into_inner();
    Ok(HttpResponse::Created().json(json!({ "transaction_id": reply.transaction_id })))
}

/// `POST /admin/payouts/run`: closes the payout period now.
pub async fn run_payouts(
    req: HttpRequest,
    admin: Admin,
    clients: web::Data<Clients>,
) -> Result<HttpResponse, ApiError> {
    let idempotency = idempotency(&req, None)?;
    let reply = clients
        .payments
        .clone()
        .run_payouts(admin.request(RunPayoutsRequest {
            idempotency: Some(idempotency),
        }))
        .await
        .map_err(|s| error(&s))?
        .into_inner();
    let paid: Vec<Value> = reply
        .paid
        .into_iter()
        .map(|m| money_json(Some(m)))
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "period_id": reply.period_id,
        "creators": reply.creators,
        "paid": paid,
    })))
}
