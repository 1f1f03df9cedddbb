use actix_web::{HttpRequest, HttpResponse, web};
use proto::user::v1::{LoginRequest, LogoutRequest, RefreshRequest, RegisterRequest, Tokens};
use serde::{Deserialize, Serialize};

use super::users::PrivateJson;
use crate::Clients;
use crate::edge::client_ip;
use crate::error::{ApiError, ErrorBody};

const USERS: &str = "user-service";

/// Passwords and tokens pass through here: nothing in this module logs a body, and none of
/// these types implements a `Debug` that would print one.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    #[schema(format = Email, max_length = 254)]
    email: String,
    /// Letters, digits and underscores.
    #[schema(pattern = "^[A-Za-z0-9_]{3,30}$")]
    username: String,
    /// 10 to 128 characters, not a common password, not the username.
    #[schema(min_length = 10, max_length = 128)]
    password: String,
    #[schema(min_length = 1, max_length = 64)]
    display_name: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// Email or username.
    #[schema(max_length = 254)]
    login: String,
    #[schema(max_length = 1024)]
    password: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshToken {
    refresh_token: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TokensJson {
    access_token: String,
    /// Always `Bearer`.
    #[schema(value_type = String)]
    token_type: &'static str,
    /// Seconds until the access token expires.
    expires_in: u64,
    refresh_token: String,
    user_id: String,
}

impl From<Tokens> for TokensJson {
    fn from(t: Tokens) -> Self {
        Self {
            access_token: t.access_token,
            token_type: "Bearer",
            expires_in: t.expires_in,
            refresh_token: t.refresh_token,
            user_id: t.user_id,
        }
    }
}

/// Creates an account.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = Registration,
    responses(
        (status = 201, description = "The account, as its owner sees it", body = PrivateJson,
            headers(("Location" = String, description = "The new user's URL"))),
        (status = 409, description = "The email or username is taken", body = ErrorBody),
    ))]
pub async fn register(
    clients: web::Data<Clients>,
    body: web::Json<Registration>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let profile = clients
        .users
        .clone()
        .register(RegisterRequest {
            email: body.email,
            username: body.username,
            password: body.password,
            display_name: body.display_name,
        })
        .await
        .map_err(|s| ApiError::from_status(USERS, &s))?
        .into_inner();
    let profile = PrivateJson::try_from(profile)?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/users/{}", profile.id())))
        .json(profile))
}

/// Signs in with an email or username and a password.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = Credentials,
    responses(
        (status = 200, description = "A new token pair", body = TokensJson),
        (status = 401, description = "Wrong login or password, or the account is locked", body = ErrorBody),
    ))]
pub async fn login(
    req: HttpRequest,
    clients: web::Data<Clients>,
    body: web::Json<Credentials>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    // Refused here already, before anything is looked up or counted (user-service refuses
    // them too, for callers other than the gateway).
    if body.login.len() > platform::MAX_LOGIN_BYTES {
        return Err(ApiError::bad_request(format!(
            "login must be at most {} bytes",
            platform::MAX_LOGIN_BYTES
        )));
    }
    if body.password.len() > platform::MAX_LOGIN_PASSWORD_BYTES {
        return Err(ApiError::bad_request(format!(
            "password must be at most {} bytes",
            platform::MAX_LOGIN_PASSWORD_BYTES
        )));
    }
    let tokens = clients
        .users
        .clone()
        .login(LoginRequest {
            login: body.login,
            password: body.password,
            client_ip: client_ip(&req),
        })
        .await
        .map_err(|s| ApiError::from_status(USERS, &s))?
        .into_inner();
    Ok(HttpResponse::Ok().json(TokensJson::from(tokens)))
}

/// Trades a refresh token for a new pair (the old one is spent; reusing it revokes its family).
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshToken,
    responses(
        (status = 200, description = "A new token pair", body = TokensJson),
        (status = 401, description = "The refresh token is invalid, expired or spent", body = ErrorBody),
    ))]
pub async fn refresh(
    clients: web::Data<Clients>,
    body: web::Json<RefreshToken>,
) -> Result<HttpResponse, ApiError> {
    let tokens = clients
        .users
        .clone()
        .refresh(RefreshRequest {
            refresh_token: body.into_inner().refresh_token,
        })
        .await
        .map_err(|s| ApiError::from_status(USERS, &s))?
        .into_inner();
    Ok(HttpResponse::Ok().json(TokensJson::from(tokens)))
}

/// Revokes a refresh token's family.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body = RefreshToken,
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "The refresh token is invalid or expired", body = ErrorBody),
    ))]
pub async fn logout(
    clients: web::Data<Clients>,
    body: web::Json<RefreshToken>,
) -> Result<HttpResponse, ApiError> {
    clients
        .users
        .clone()
        .logout(LogoutRequest {
            refresh_token: body.into_inner().refresh_token,
        })
        .await
        .map_err(|s| ApiError::from_status(USERS, &s))?;
    Ok(HttpResponse::NoContent().finish())
}
