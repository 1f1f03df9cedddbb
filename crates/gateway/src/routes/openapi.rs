//! The REST API's OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]`
//! annotations and the very types they serialise; served at `/api/v1/openapi.json`, with
//! Swagger UI at `/api/v1/docs/`.
//!
//! The answers every operation can give whatever it does (a rate limit, a shed request, an
//! expired deadline, a bad token, an unknown id...) are added here, once, by [`Errors`].

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, OpenApi as Document, Ref, RefOr, ResponseBuilder,
};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use super::{auth, engagement, payments, plans, users, videos};
use crate::error::ErrorBody;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Social Flow API",
        description = "Users, videos, engagement and payments of Social Flow. Errors are \
                       `{\"error\": {\"code\", \"message\", \"request_id\"}}`; 429 and 503 \
                       carry `Retry-After`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        auth::register, auth::login, auth::refresh, auth::logout,
        users::get_me, users::update_me, users::delete_me, users::get_user_by_username,
        users::get_user, users::follow, users::unfollow, users::followers, users::following,
        videos::list_videos, videos::upload_video, videos::create_upload, videos::get_video,
        videos::update_video, videos::delete_video, videos::complete_upload, videos::playback,
        videos::get_video_stats, videos::list_user_videos,
        engagement::user_posts, engagement::feed, engagement::create_post, engagement::get_post,
        engagement::delete_post, engagement::like_post, engagement::unlike_post,
        engagement::delete_comment, engagement::like_comment, engagement::unlike_comment,
        engagement::trending, engagement::record_view, engagement::like_video,
        engagement::unlike_video, engagement::list_comments, engagement::create_comment,
        plans::list_plans, payments::subscribe, payments::my_subscription,
        payments::cancel_subscription, payments::earnings, payments::payouts,
        payments::ingest_ads, payments::revenue, payments::transfer, payments::run_payouts,
    ),
    modifiers(&Errors),
    tags(
        (name = "auth", description = "Accounts and tokens"),
        (name = "users", description = "Profiles and follows"),
        (name = "videos", description = "Uploads, videos and playback"),
        (name = "engagement", description = "Views, likes, comments, posts, feed and trending"),
        (name = "payments", description = "Plans, subscriptions, earnings and payouts"),
        (name = "admin", description = "Money routes for admins"),
    ),
)]
pub struct ApiDoc;

/// The document, as served.
pub fn document() -> Document {
    ApiDoc::openapi()
}

/// Shared error answers, and the bearer scheme.
struct Errors;

/// (status, component name, description, carries `Retry-After`).
const SHARED: &[(&str, &str, &str, bool)] = &[
    (
        "400",
        "BadRequest",
        "The request is invalid: the message names the field",
        false,
    ),
    (
        "401",
        "Unauthenticated",
        "No valid access token where one is needed",
        false,
    ),
    (
        "403",
        "PermissionDenied",
        "The caller may not do this",
        false,
    ),
    (
        "404",
        "NotFound",
        "Nothing with this id, or nothing the caller may see",
        false,
    ),
    (
        "413",
        "PayloadTooLarge",
        "The body is larger than the route takes",
        false,
    ),
    (
        "415",
        "UnsupportedMediaType",
        "The body is not of the route's content type",
        false,
    ),
    (
        "429",
        "RateLimited",
        "Too many requests from this caller: wait `Retry-After`",
        true,
    ),
    (
        "503",
        "Unavailable",
        "The gateway is at capacity, or a dependency is down: retry later",
        true,
    ),
    (
        "504",
        "DeadlineExceeded",
        "A dependency did not answer in time",
        false,
    ),
];

impl Modify for Errors {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.security_schemes.insert(
            "bearer".to_owned(),
            RefOr::T(SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            )),
        );
        let mut schemas = vec![(ErrorBody::name().into_owned(), ErrorBody::schema())];
        <ErrorBody as ToSchema>::schemas(&mut schemas);
        components.schemas.extend(schemas);
        for &(_, name, description, retry_after) in SHARED {
            let mut response = ResponseBuilder::new().description(description).content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(ErrorBody::name())))
                    .build(),
            );
            if retry_after {
                response = response.header(
                    "Retry-After",
                    HeaderBuilder::new()
                        .schema(Some(u32::schema()))
                        .description(Some("Seconds to wait before trying again"))
                        .build(),
                );
            }
            components
                .responses
                .insert(name.to_owned(), RefOr::T(response.build()));
        }
        for (path, item) in &mut doc.paths.paths {
            let has_id = path.contains('{');
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let security = operation.security.as_deref().unwrap_or_default();
                // `security((), ("bearer" = []))`: a token is optional (and checked if sent).
                let secured = !security.is_empty();
                let required = secured && !security.contains(&SecurityRequirement::default());
                let has_body = operation.request_body.is_some();
                for &(status, name, _, _) in SHARED {
                    let applies = match status {
                        "401" => secured,
                        "403" => required,
                        "404" => has_id,
                        "413" | "415" => has_body,
                        _ => true,
                    };
                    if applies {
                        operation
                            .responses
                            .responses
                            .entry(status.to_owned())
                            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
                    }
                }
            }
        }
    }
}
