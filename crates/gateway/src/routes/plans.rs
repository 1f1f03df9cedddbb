use actix_web::{HttpResponse, web};
use proto::payments::v1::ListPlansRequest;
use serde::Serialize;

use crate::Clients;
use crate::error::ApiError;

#[derive(Debug, Serialize)]
struct PlanJson {
    id: String,
    name: String,
    price_cents: i64,
    currency: String,
    interval: String,
}

#[derive(Debug, Serialize)]
struct Plans {
    plans: Vec<PlanJson>,
}

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
            .map(|p| PlanJson {
                id: p.id,
                name: p.name,
                price_cents: p.price_cents,
                currency: p.currency,
                interval: p.interval,
            })
            .collect(),
    }))
}
