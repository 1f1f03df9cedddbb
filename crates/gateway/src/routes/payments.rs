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
use proto::payments::v1::{
    Earnings, IngestAdRevenueResponse, ListPayoutsResponse, RevenueSummary, RunPayoutsResponse,
    Subscription, TransferResponse,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::parse_id;
use crate::Clients;
use crate::edge::{Admin, Authenticated};
use crate::error::{ApiError, ErrorBody};

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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSubscription {
    plan_id: String,
    payment_method: String,
}

/// `POST /subscriptions`: subscribes the caller, charging the plan's price.
#[utoipa::path(post, path = "/api/v1/subscriptions", tag = "payments", security(("bearer" = [])),
    params(("Idempotency-Key" = String, Header, min_length = 1, max_length = 255, description = "Names the operation: a retry with the same key and request gets the first answer")), request_body = NewSubscription,
    responses(
        (status = 201, description = "Subscribed and charged", body = Subscription),
        (status = 404, description = "No such plan", body = ErrorBody),
        (status = 402, description = "The card was declined", body = ErrorBody),
        (status = 409, description = "Already subscribed, or the key is in use by a call in flight", body = ErrorBody),
        (status = 422, description = "The key was used for another request", body = ErrorBody),
    ))]
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
    Ok(HttpResponse::Created().json(sub))
}

#[utoipa::path(get, path = "/api/v1/me/subscription", tag = "payments", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's subscription", body = Subscription),
        (status = 404, description = "The caller has no subscription", body = ErrorBody),
    ))]
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
    Ok(HttpResponse::Ok().json(sub))
}

/// `DELETE /me/subscription`: cancels at the end of the paid period.
#[utoipa::path(delete, path = "/api/v1/me/subscription", tag = "payments", security(("bearer" = [])),
    params(("Idempotency-Key" = String, Header, min_length = 1, max_length = 255, description = "Names the operation: a retry with the same key and request gets the first answer")),
    responses(
        (status = 200, description = "Canceled at the end of the paid period", body = Subscription),
        (status = 404, description = "The caller has no subscription", body = ErrorBody),
        (status = 409, description = "The key is in use by a call in flight", body = ErrorBody),
        (status = 422, description = "The key was used for another request", body = ErrorBody),
    ))]
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
    Ok(HttpResponse::Ok().json(sub))
}

/// What the caller earned as a creator, by payout period, and their balance.
#[utoipa::path(get, path = "/api/v1/me/earnings", tag = "payments", security(("bearer" = [])),
    responses((status = 200, description = "Balance and earnings", body = Earnings)))]
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
    Ok(HttpResponse::Ok().json(reply))
}

#[utoipa::path(get, path = "/api/v1/me/payouts", tag = "payments", security(("bearer" = [])),
    responses((status = 200, description = "The caller's payouts, newest first", body = ListPayoutsResponse)))]
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
    Ok(HttpResponse::Ok().json(reply))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdEventJson {
    #[schema(value_type = uuid::Uuid)]
    video_id: String,
    /// `impression` or `click`.
    kind: String,
    amount_minor: i64,
    /// ISO 4217.
    currency: String,
    #[schema(value_type = Option<String>, format = DateTime)]
    occurred_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdBatch {
    events: Vec<AdEventJson>,
}

/// `POST /admin/ad-revenue`: a batch of impression and click revenue.
#[utoipa::path(post, path = "/api/v1/admin/ad-revenue", tag = "admin", security(("bearer" = [])),
    params(("Idempotency-Key" = String, Header, min_length = 1, max_length = 255, description = "Names the operation: a retry with the same key and request gets the first answer")), request_body = AdBatch,
    responses(
        (status = 201, description = "Booked", body = IngestAdRevenueResponse),
        (status = 404, description = "An event names a video that does not exist", body = ErrorBody),
        (status = 409, description = "The key is in use by a call in flight", body = ErrorBody),
        (status = 422, description = "The key was used for another request", body = ErrorBody),
    ))]
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
    Ok(HttpResponse::Created().json(reply))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RevenueParams {
    #[param(value_type = String, format = DateTime)]
    from: chrono::DateTime<chrono::Utc>,
    #[param(value_type = String, format = DateTime)]
    to: chrono::DateTime<chrono::Utc>,
}

/// `GET /admin/revenue?from=&to=` (RFC 3339 times): revenue by source and currency.
#[utoipa::path(get, path = "/api/v1/admin/revenue", tag = "admin", security(("bearer" = [])),
    params(RevenueParams),
    responses((status = 200, description = "Revenue by source and currency", body = RevenueSummary)))]
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
    Ok(HttpResponse::Ok().json(reply))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferJson {
    #[schema(value_type = uuid::Uuid)]
    from_account: String,
    #[schema(value_type = uuid::Uuid)]
    to_account: String,
    amount_minor: i64,
    currency: String,
}

/// `POST /admin/transfers`: moves money between two ledger accounts.
#[utoipa::path(post, path = "/api/v1/admin/transfers", tag = "admin", security(("bearer" = [])),
    params(("Idempotency-Key" = String, Header, min_length = 1, max_length = 255, description = "Names the operation: a retry with the same key and request gets the first answer")), request_body = TransferJson,
    responses(
        (status = 201, description = "Booked", body = TransferResponse),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 409, description = "Insufficient funds, or the key is in use by a call in flight", body = ErrorBody),
        (status = 422, description = "The key was used for another request", body = ErrorBody),
    ))]
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
    Ok(HttpResponse::Created().json(reply))
}

/// `POST /admin/payouts/run`: closes the payout period now.
#[utoipa::path(post, path = "/api/v1/admin/payouts/run", tag = "admin", security(("bearer" = [])),
    params(("Idempotency-Key" = String, Header, min_length = 1, max_length = 255, description = "Names the operation: a retry with the same key and request gets the first answer")),
    responses(
        (status = 200, description = "The period closed and what it paid", body = RunPayoutsResponse),
        (status = 409, description = "The key is in use by a call in flight", body = ErrorBody),
        (status = 422, description = "The key was used for another request", body = ErrorBody),
    ))]
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
    Ok(HttpResponse::Ok().json(reply))
}
