use actix_web::{HttpResponse, web};
use proto::user::v1::{
    DeleteAccountRequest, FollowRequest, GetMeRequest, GetUserByUsernameRequest, GetUserRequest,
    ListFollowsRequest, PrivateProfile, Profile, UpdateProfileRequest,
};
use serde::{Deserialize, Serialize};

use super::{PageParams, parse_id};
use crate::Clients;
use crate::edge::Authenticated;
use crate::error::ApiError;

const USERS: &str = "user-service";

/// The owner's view: the public profile and the email, side by side (gRPC nests them).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PrivateJson {
    #[serde(flatten)]
    profile: Profile,
    email: String,
}

impl PrivateJson {
    pub fn id(&self) -> &str {
        &self.profile.id
    }
}

impl TryFrom<PrivateProfile> for PrivateJson {
    type Error = ApiError;
    fn try_from(p: PrivateProfile) -> Result<Self, ApiError> {
        let PrivateProfile { profile, email } = p;
        let profile = profile
            .ok_or_else(|| ApiError::from_status(USERS, &tonic::Status::internal("empty reply")))?;
        Ok(Self { profile, email })
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileChanges {
    display_name: Option<String>,
    bio: Option<String>,
    /// `""` or `null` removes the avatar.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    avatar_url: Option<Option<String>>,
}

/// Tells `"avatar_url": null` (remove) from a missing field (keep).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Ok(Some(Option::deserialize(d)?))
}

/// A user's public profile.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", params(("id" = Uuid, Path, description = "The user's id")),
    responses((status = 200, description = "The profile", body = Profile)))]
pub async fn get_user(
    clients: web::Data<Clients>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id("id", &path)?;
    let profile = platform::retry::idempotent(&clients.retries, USERS, || {
        let mut client = clients.users.clone();
        let request = GetUserRequest { id: id.to_string() };
        async move { client.get_user(request).await }
    })
    .await
    .map_err(|s| ApiError::from_status(USERS, &s))?
    .into_inner();
    Ok(HttpResponse::Ok().json(profile))
}

/// A user's public profile, by username.
#[utoipa::path(get, path = "/api/v1/users/by-username/{username}", tag = "users",
    params(("username" = String, Path)),
    responses((status = 200, description = "The profile", body = Profile)))]
pub async fn get_user_by_username(
    clients: web::Data<Clients>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let profile = clients
        .users
        .clone()
        .get_user_by_username(GetUserByUsernameRequest {
            username: path.into_inner(),
        })
        .await
        .map_err(|s| ApiError::from_status(USERS, &s))?
        .into_inner();
    Ok(HttpResponse::Ok().json(profile))
}

/// The caller's own profile, with the email.
#[utoipa::path(get, path = "/api/v1/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, description = "The caller's account", body = PrivateJson)))]
pub async fn get_me(
    me: Authenticated,
    clients: web::Data<Clients>,
) -> Result<HttpResponse, ApiError> {
    let profile = clients
        .users
        .clone()
        .get_me(me.request(GetMeRequest {}))
        .await
        .map_err(|s| ApiError::from_status(USERS, &s))?
        .into_inner();
    Ok(HttpResponse::Ok().json(PrivateJson::try_from(profile)?))
}

/// Changes the caller's display name, bio or avatar.
#[utoipa::path(patch, path = "/api/v1/me", tag = "users", security(("bearer" = [])),
    request_body = ProfileChanges,
    responses((status = 200, description = "The account as changed", body = PrivateJson)))]
pub async fn update_me(
    me: Authenticated,
    clients: web::Data<Clients>,
    body: web::Json<ProfileChanges>,
) -> Result<HttpResponse, ApiError> {
    let changes = body.into_inner();
    let profile = clients
        .users
        .clone()
        .update_profile(me.request(UpdateProfileRequest {
            display_name: changes.display_name,
            bio: changes.bio,
            avatar_url: changes.avatar_url.map(Option::unwrap_or_default),
        }))
        .await
        .map_err(|s| ApiError::from_status(USERS, &s))?
        .into_inner();
    Ok(HttpResponse::Ok().json(PrivateJson::try_from(profile)?))
}

/// Deletes the caller's account, and their likes, comments and posts.
#[utoipa::path(delete, path = "/api/v1/me", tag = "users", security(("bearer" = [])),
    responses((status = 204, description = "Deleted")))]
pub async fn delete_me(
    me: Authenticated,
    clients: web::Data<Clients>,
) -> Result<HttpResponse, ApiError> {
    // Their likes, comments and posts first (idempotent): if that fails the account stays
    // and the call can be repeated; an account is never gone with its content left behind.
    clients
        .engagement
        .clone()
        .forget_user(me.request(proto::engagement::v1::ForgetUserRequest {}))
        .await
        .map_err(|s| ApiError::from_status("engagement-service", &s))?;
    clients
        .users
        .clone()
        .delete_account(me.request(DeleteAccountRequest {}))
        .await
        .map_err(|s| ApiError::from_status(USERS, &s))?;
    Ok(HttpResponse::NoContent().finish())
}

/// `PUT` follows, `DELETE` unfollows; both idempotent.
async fn set_following(
    me: &Authenticated,
    clients: &Clients,
    id: &str,
    follow: bool,
) -> Result<HttpResponse, ApiError> {
    let request = me.request(FollowRequest {
        user_id: parse_id("id", id)?.to_string(),
    });
    let mut users = clients.users.clone();
    if follow {
        users.follow(request).await
    } else {
        users.unfollow(request).await
    }
    .map_err(|s| ApiError::from_status(USERS, &s))?;
    Ok(HttpResponse::NoContent().finish())
}

/// Follows a user (idempotent).
#[utoipa::path(put, path = "/api/v1/users/{id}/follow", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user's id")), responses((status = 204, description = "Following")))]
pub async fn follow(
    me: Authenticated,
    clients: web::Data<Clients>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_following(&me, &clients, &path, true).await
}

/// Stops following a user (idempotent).
#[utoipa::path(delete, path = "/api/v1/users/{id}/follow", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user's id")), responses((status = 204, description = "Not following")))]
pub async fn unfollow(
    me: Authenticated,
    clients: web::Data<Clients>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_following(&me, &clients, &path, false).await
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserPage {
    users: Vec<Profile>,
    next_cursor: Option<String>,
}

async fn follows(
    clients: &Clients,
    id: &str,
    params: PageParams,
    followers: bool,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id("id", id)?;
    let (page_size, page_token) = params.into_request()?;
    let request = ListFollowsRequest {
        user_id: id.to_string(),
        page_size,
        page_token,
    };
    let mut users = clients.users.clone();
    let reply = if followers {
        users.list_followers(request).await
    } else {
        users.list_following(request).await
    }
    .map_err(|s| super::page_error(USERS, &s))?
    .into_inner();
    Ok(HttpResponse::Ok().json(UserPage {
        users: reply.users,
        next_cursor: Some(reply.next_page_token).filter(|t| !t.is_empty()),
    }))
}

/// Who follows a user, newest first.
#[utoipa::path(get, path = "/api/v1/users/{id}/followers", tag = "users", params(("id" = Uuid, Path, description = "The user's id"), PageParams),
    responses((status = 200, description = "A page of users", body = UserPage)))]
pub async fn followers(
    clients: web::Data<Clients>,
    path: web::Path<String>,
    params: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    follows(&clients, &path, params.into_inner(), true).await
}

/// Whom a user follows, newest first.
#[utoipa::path(get, path = "/api/v1/users/{id}/following", tag = "users", params(("id" = Uuid, Path, description = "The user's id"), PageParams),
    responses((status = 200, description = "A page of users", body = UserPage)))]
pub async fn following(
    clients: web::Data<Clients>,
    path: web::Path<String>,
    params: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    follows(&clients, &path, params.into_inner(), false).await
}
