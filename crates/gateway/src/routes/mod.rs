//! REST routes under `/api/v1`: validate, call one service, translate the answer.

mod auth;
mod engagement;
mod openapi;
mod payments;
mod plans;
mod users;
mod videos;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use platform::pagination::MAX_PAGE_SIZE;
use serde::Deserialize;
use uuid::Uuid;

use crate::error::ApiError;
use crate::error::extractors::json_config;

pub use engagement::ViewerCookies;
pub use openapi::document as openapi_document;

/// `GET /path` → handler, with a JSON 405 for any other method.
macro_rules! resource {
    ($path:expr $(, $method:ident => $handler:expr)+ $(,)?) => {
        web::resource($path)
            $(.route(web::$method().to($handler)))+
            .default_service(web::to(method_not_allowed))
    };
}

/// The largest body a route that carries credentials or tokens takes: nothing it needs
/// comes near (a login is at most 254 + 1024 bytes); `http.max_body_bytes` is the bound of
/// every other JSON route, and the lower of the two applies.
const CREDENTIALS_BODY_BYTES: usize = 4 * 1024;

/// A subscription or a transfer: a few short fields.
const SMALL_BODY_BYTES: usize = 4 * 1024;

/// A batch of up to 1000 ad revenue events (about 150 bytes each).
const AD_BATCH_BODY_BYTES: usize = 256 * 1024;

/// The API routes; `max_body` is `http.max_body_bytes`.
pub fn configure(cfg: &mut web::ServiceConfig, max_body: usize) {
    let credentials = || json_config(CREDENTIALS_BODY_BYTES.min(max_body));
    // Before the scope, which would answer 404 for paths it does not know. Paths lose a
    // trailing slash (`canonical`): the UI's entry is its `index.html`.
    cfg.service(
        utoipa_swagger_ui::SwaggerUi::new("/api/v1/docs/{_:.*}")
            .url("/api/v1/openapi.json", openapi::document()),
    )
    .service(web::resource("/api/v1/docs").to(|| async {
        HttpResponse::PermanentRedirect()
            .insert_header(("Location", "/api/v1/docs/index.html"))
            .finish()
    }));
    cfg.service(
        web::scope("/api/v1")
            .service(resource!("/auth/register", post => auth::register).app_data(credentials()))
            .service(resource!("/auth/login", post => auth::login).app_data(credentials()))
            .service(resource!("/auth/refresh", post => auth::refresh).app_data(credentials()))
            .service(resource!("/auth/logout", post => auth::logout).app_data(credentials()))
            .service(resource!("/me", get => users::get_me, patch => users::update_me, delete => users::delete_me))
            .service(resource!("/users/by-username/{username}", get => users::get_user_by_username))
            .service(resource!("/users/{id}", get => users::get_user))
            .service(resource!("/users/{id}/follow", put => users::follow, delete => users::unfollow))
            .service(resource!("/users/{id}/followers", get => users::followers))
            .service(resource!("/users/{id}/following", get => users::following))
            .service(resource!("/users/{id}/videos", get => videos::list_user_videos))
            .service(resource!("/users/{id}/posts", get => engagement::user_posts))
            .service(resource!("/feed", get => engagement::feed))
            .service(resource!("/posts", post => engagement::create_post))
            .service(resource!("/posts/{id}", get => engagement::get_post, delete => engagement::delete_post))
            .service(resource!("/posts/{id}/like", put => engagement::like_post, delete => engagement::unlike_post))
            .service(resource!("/comments/{id}", delete => engagement::delete_comment))
            .service(resource!("/comments/{id}/like", put => engagement::like_comment, delete => engagement::unlike_comment))
            .service(resource!("/videos", get => videos::list_videos, post => videos::upload_video))
            // Before `/videos/{id}`, which would take `uploads` for an id.
            .service(resource!("/videos/uploads", post => videos::create_upload))
            .service(resource!("/videos/trending", get => engagement::trending))
            .service(resource!("/videos/{id}", get => videos::get_video, patch => videos::update_video, delete => videos::delete_video))
            .service(resource!("/videos/{id}/complete", post => videos::complete_upload))
            .service(resource!("/videos/{id}/playback", get => videos::playback))
            .service(resource!("/videos/{id}/stats", get => videos::get_video_stats))
            .service(resource!("/videos/{id}/views", post => engagement::record_view))
            .service(resource!("/videos/{id}/like", put => engagement::like_video, delete => engagement::unlike_video))
            .service(resource!("/videos/{id}/comments", get => engagement::list_comments, post => engagement::create_comment))
            .service(resource!("/subscriptions/plans", get => plans::list_plans))
            .service(resource!("/subscriptions", post => payments::subscribe).app_data(json_config(SMALL_BODY_BYTES.min(max_body))))
            .service(resource!("/me/subscription", get => payments::my_subscription, delete => payments::cancel_subscription))
            .service(resource!("/me/earnings", get => payments::earnings))
            .service(resource!("/me/payouts", get => payments::payouts))
            .service(resource!("/admin/ad-revenue", post => payments::ingest_ads).app_data(json_config(AD_BATCH_BODY_BYTES)))
            .service(resource!("/admin/revenue", get => payments::revenue))
            .service(resource!("/admin/transfers", post => payments::transfer).app_data(json_config(SMALL_BODY_BYTES.min(max_body))))
            .service(resource!("/admin/payouts/run", post => payments::run_payouts)),
    );
}

/// `?limit=&cursor=` of every list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page: 1 to 100, default 20.
    // A string here, so that a bad value gets an error naming `limit`.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

impl PageParams {
    /// (page_size, page_token) for the service; 0 means its default size.
    fn into_request(self) -> Result<(u32, String), ApiError> {
        let size = match self.limit.as_deref() {
            None => 0,
            Some(raw) => match raw.parse::<u32>() {
                Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "limit must be an integer from 1 to {MAX_PAGE_SIZE}, got `{raw}`"
                    )));
                }
            },
        };
        Ok((size, self.cursor.unwrap_or_default()))
    }
}

/// A list call's error, in the API's words: services speak of `page_token`, clients of
/// this API know it as `cursor`.
fn page_error(service: &str, status: &tonic::Status) -> ApiError {
    if status.code() == tonic::Code::InvalidArgument
        && platform::grpc::invalid_fields(status)
            .iter()
            .any(|f| f == "page_token")
    {
        ApiError::bad_request("cursor is not one this API issued")
    } else {
        ApiError::from_status(service, status)
    }
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
