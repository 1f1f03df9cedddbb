use actix_web::{HttpResponse, web};
use proto::user::v1::{CreateUserRequest, GetUserRequest, User};
use serde::{Deserialize, Serialize};

use super::parse_id;
use crate::Clients;
use crate::error::ApiError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    email: String,
    username: String,
    display_name: String,
}

#[derive(Debug, Serialize)]
pub struct UserJson {
    id: String,
    email: String,
    username: String,
    display_name: String,
    created_at: String,
}

impl From<User> for UserJson {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            email: u.email,
            username: u.username,
            display_name: u.display_name,
            created_at: u.created_at,
        }
    }
}

fn user_or_internal(user: Option<User>) -> Result<UserJson, ApiError> {
    user.map(UserJson::from).ok_or_else(|| {
        ApiError::from_status("user-service", &tonic::Status::internal("empty reply"))
    })
}

pub async fn create_user(
    clients: web::Data<Clients>,
    body: web::Json<NewUser>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let reply = clients
        .users
        .clone()
        .create_user(CreateUserRequest {
            email: body.email,
            username: body.username,
            display_name: body.display_name,
        })
        .await
        .map_err(|s| ApiError::from_status("user-service", &s))?
        .into_inner();
    let user = user_or_internal(reply.user)?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/users/{}", user.id)))
        .json(user))
}

pub async fn get_user(
    clients: web::Data<Clients>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id("id", &path)?;
    let reply = clients
        .users
        .clone()
        .get_user(GetUserRequest { id: id.to_string() })
        .await
        .map_err(|s| ApiError::from_status("user-service", &s))?
        .into_inner();
    Ok(HttpResponse::Ok().json(user_or_internal(reply.user)?))
}
