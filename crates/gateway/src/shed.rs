//! Load shedding: at most `http.max_in_flight` requests are served at once; the next ones
//! get 503 with `Retry-After` straight away, before queues (and everyone's latency) grow.
//! Health checks are never shed: an overloaded gateway is still alive. Shed requests are
//! `http_requests_shed_total{endpoint}`, and measured like any 503 (the middleware runs
//! inside the telemetry one).

use std::sync::Arc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, ResponseError, web};
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// The requests in flight.
#[derive(Debug, Clone)]
pub struct InFlight(Arc<Semaphore>);

impl InFlight {
    pub fn new(max: usize) -> Self {
        Self(Arc::new(Semaphore::new(max.max(1))))
    }
}

pub async fn limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let Some(in_flight) = req.app_data::<web::Data<InFlight>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    if req.path().starts_with("/health") {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let Ok(_permit) = in_flight.0.clone().try_acquire_owned() else {
        let endpoint = req
            .match_pattern()
            .unwrap_or_else(|| telemetry::http::UNMATCHED_ROUTE.to_owned());
        metrics::counter!(telemetry::metrics::HTTP_REQUESTS_SHED_TOTAL, "endpoint" => endpoint)
            .increment(1);
        let response = ApiError::overloaded(1).error_response();
        return Ok(req.into_response(response));
    };
    Ok(next.call(req).await?.map_into_boxed_body())
}
