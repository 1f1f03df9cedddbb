use actix_web::{HttpResponse, web};
use proto::common::v1::Money;
use proto::payments::v1::{ListPlansRequest, Plan};
use serde::Serialize;

use crate::Clients;
use crate::error::ApiError;

/// A plan as the REST API has always shown it: the price in cents beside its currency.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PlanJson {
    id: String,
    name: String,
    price_cents: i64,
    /// ISO 4217.
    currency: String,
    /// `month` or `year`.
    interval: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Plans {
    plans: Vec<PlanJson>,
}

/// The subscription plans on offer.
#[utoipa::path(get, path = "/api/v1/subscriptions/plans", tag = "payments",
    responses((status = 200, description = "The plans", body = Plans)))]
pub async fn list_plans(clients: web::Data<Clients>) -> Result<HttpResponse, ApiError> {
    let reply = clients
        .payments
        .clone()
        .list_plans(ListPlansRequest {})
        .await
        .map_err(|s| ApiError::from_status("payments-service", &s))?
        .into_inner();
    Ok(HttpResponse::Ok().json(Plans {
        plans: reply
            .plans
            .into_iter()
            .map(|p| {
                let Plan {
                    id,
                    name,
                    price,
                    interval,
                } = p;
                let Money {
                    amount_minor,
                    currency,
                } = price.unwrap_or_default();
                PlanJson {
                    id,
                    name,
                    price_cents: amount_minor,
                    currency,
                    interval,
                }
            })
            .collect(),
    }))
}
