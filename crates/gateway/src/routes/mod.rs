//! REST routes under `/api/v1`: validate, call one service, translate the answer.

mod plans;
mod users;
mod videos;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use uuid::Uuid;

use crate::error::ApiError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .service(
                web::resource("/users")
                    .route(web::post().to(users::create_user))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/users/{id}")
                    .route(web::get().to(users::get_user))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/videos")
                    .route(web::get().to(videos::list_videos))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/videos/{id}")
                    .route(web::get().to(videos::get_video))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/videos/{id}/stats")
                    .route(web::get().to(videos::get_video_stats))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/subscriptions/plans")
                    .route(web::get().to(plans::list_plans))
                    .default_service(web::to(method_not_allowed)),
            ),
    );
}

/// The answer for paths no route matches.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}

async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not supported on {}", req.method(), req.path()),
    ))
}

/// A path id, which must be a UUID.
fn parse_id(name: &str, raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw)
        .map_err(|_| ApiError::bad_request(format!("{name} must be a UUID, got `{raw}`")))
}
