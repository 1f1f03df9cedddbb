//! The tonic service: validates and converts, calls the store, converts back.

use proto::user::v1::user_service_server::UserService;
use proto::user::v1::{
    CreateUserRequest, CreateUserResponse, GetUserRequest, GetUserResponse, User as UserMsg,
};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::domain::{DisplayName, Email, InvalidField, Username};
use crate::store::{CreateError, Store, User};

pub struct UserApi {
    store: Store,
}

impl UserApi {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

fn invalid(e: InvalidField) -> Status {
    Status::invalid_argument(e.to_string())
}

fn to_message(u: User) -> UserMsg {
    UserMsg {
        id: u.id.to_string(),
        email: u.email,
        username: u.username,
        display_name: u.display_name,
        created_at: u.created_at.to_rfc3339(),
    }
}

impl From<CreateError> for Status {
    fn from(e: CreateError) -> Self {
        match e {
            CreateError::Taken(field) => {
                Status::already_exists(format!("{field} is already taken"))
            }
            CreateError::Db(e) => e.into(),
        }
    }
}

#[tonic::async_trait]
impl UserService for UserApi {
    async fn create_user(
        &self,
        request: Request<CreateUserRequest>,
    ) -> Result<Response<CreateUserResponse>, Status> {
        let r = request.into_inner();
        let email = Email::parse(&r.email).map_err(invalid)?;
        let username = Username::parse(&r.username).map_err(invalid)?;
        let display_name = DisplayName::parse(&r.display_name).map_err(invalid)?;
        let user = self
            .store
            .create_user(&email, &username, &display_name)
            .await?;
        metrics::counter!(telemetry::metrics::USER_REGISTRATIONS_TOTAL).increment(1);
        tracing::info!(user_id = %user.id, "user created");
        Ok(Response::new(CreateUserResponse {
            user: Some(to_message(user)),
        }))
    }

    async fn get_user(
        &self,
        request: Request<GetUserRequest>,
    ) -> Result<Response<GetUserResponse>, Status> {
        let raw = &request.get_ref().id;
        let id = Uuid::parse_str(raw)
            .map_err(|_| Status::invalid_argument(format!("id must be a UUID, got `{raw}`")))?;
        let user = self
            .store
            .user(id)
            .await?
            .ok_or_else(|| Status::not_found(format!("no user with id {id}")))?;
        Ok(Response::new(GetUserResponse {
            user: Some(to_message(user)),
        }))
    }
}
