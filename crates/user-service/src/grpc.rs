//! The tonic adapter: parses protobuf into domain types, calls one use case, converts the
//! answer back. No rule lives here.

use platform::identity::Caller;
use platform::pagination::parse_request;
use proto::user::v1::user_service_server::UserService;
use proto::user::v1::{
    BatchGetProfilesRequest, BatchGetProfilesResponse, DeleteAccountRequest, DeleteAccountResponse,
    FollowRequest, FollowResponse, Followee, GetMeRequest, GetUserByUsernameRequest,
    GetUserRequest, ListAllFollowingRequest, ListAllFollowingResponse, ListFollowsRequest,
    ListFollowsResponse, LoginRequest, LogoutRequest, LogoutResponse, PrivateProfile, Profile,
    RefreshRequest, RegisterRequest, Tokens, UpdateProfileRequest,
};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::app::{Accounts, Direction, MAX_BATCH, ProfileChanges, Registration, Session};
use crate::domain::{
    AvatarUrl, Bio, DisplayName, Email, InvalidField, Login, NewPassword, Password, UserId,
    Username,
};
use crate::error::UserError;
use crate::store::User;

pub struct UserApi {
    accounts: Accounts,
}

impl UserApi {
    pub fn new(accounts: Accounts) -> Self {
        Self { accounts }
    }
}

type Answer<T> = Result<Response<T>, Status>;

fn parse_id(field: &'static str, raw: &str) -> Result<Uuid, UserError> {
    Ok(platform::field::parse_uuid(field, raw)?)
}

/// The signed-in caller, as the internal identity token proves it.
fn me<T>(request: &Request<T>) -> Result<UserId, Status> {
    Caller::require_user(request).map(UserId)
}

fn required(field: &'static str, raw: &str) -> Result<(), UserError> {
    if raw.is_empty() {
        return Err(InvalidField::new(field, "is required").into());
    }
    Ok(())
}

fn profile(u: User) -> Profile {
    let User {
        id,
        email: _,
        username,
        display_name,
        bio,
        avatar_url,
        created_at,
        followers,
        following,
    } = u;
    Profile {
        id: id.to_string(),
        username,
        display_name,
        bio,
        avatar_url,
        created_at: Some(proto::serde_ext::to_timestamp(created_at)),
        followers_count: u64::try_from(followers).unwrap_or(0),
        following_count: u64::try_from(following).unwrap_or(0),
    }
}

fn private(u: User) -> PrivateProfile {
    let email = u.email.clone();
    PrivateProfile {
        profile: Some(profile(u)),
        email,
    }
}

fn tokens(s: Session) -> Tokens {
    let Session {
        user_id,
        access_token,
        expires_in,
        refresh_token,
    } = s;
    Tokens {
        access_token,
        expires_in,
        refresh_token,
        user_id: user_id.to_string(),
    }
}

#[tonic::async_trait]
impl UserService for UserApi {
    async fn register(&self, request: Request<RegisterRequest>) -> Answer<PrivateProfile> {
        let RegisterRequest {
            email,
            username,
            password,
            display_name,
        } = request.into_inner();
        let registration = (|| -> Result<Registration, InvalidField> {
            let email = Email::parse(&email)?;
            let username = Username::parse(&username)?;
            Ok(Registration {
                email,
                password: NewPassword::parse(&password, username.as_str())?,
                display_name: DisplayName::parse(&display_name)?,
                username,
            })
        })()
        .map_err(UserError::from)?;
        let user = self.accounts.register(registration).await?;
        Ok(Response::new(private(user)))
    }

    async fn login(&self, request: Request<LoginRequest>) -> Answer<Tokens> {
        let LoginRequest {
            login,
            password,
            client_ip,
        } = request.into_inner();
        let login = Login::parse(&login).map_err(UserError::from)?;
        let password = Password::parse(password).map_err(UserError::from)?;
        let session = self.accounts.login(&login, password, &client_ip).await?;
        Ok(Response::new(tokens(session)))
    }

    async fn refresh(&self, request: Request<RefreshRequest>) -> Answer<Tokens> {
        let RefreshRequest { refresh_token } = request.into_inner();
        required("refresh_token", &refresh_token)?;
        let session = self.accounts.refresh(&refresh_token).await?;
        Ok(Response::new(tokens(session)))
    }

    async fn logout(&self, request: Request<LogoutRequest>) -> Answer<LogoutResponse> {
        let LogoutRequest { refresh_token } = request.into_inner();
        required("refresh_token", &refresh_token)?;
        self.accounts.logout(&refresh_token).await?;
        Ok(Response::new(LogoutResponse {}))
    }

    async fn get_user(&self, request: Request<GetUserRequest>) -> Answer<Profile> {
        let id = parse_id("id", &request.get_ref().id)?;
        Ok(Response::new(profile(self.accounts.user(id).await?)))
    }

    async fn get_user_by_username(
        &self,
        request: Request<GetUserByUsernameRequest>,
    ) -> Answer<Profile> {
        let username = Username::parse(&request.get_ref().username).map_err(UserError::from)?;
        let user = self.accounts.user_by_username(&username).await?;
        Ok(Response::new(profile(user)))
    }

    async fn get_me(&self, request: Request<GetMeRequest>) -> Answer<PrivateProfile> {
        let me = me(&request)?;
        Ok(Response::new(private(self.accounts.me(me).await?)))
    }

    async fn update_profile(
        &self,
        request: Request<UpdateProfileRequest>,
    ) -> Answer<PrivateProfile> {
        let me = me(&request)?;
        let UpdateProfileRequest {
            display_name,
            bio,
            avatar_url,
        } = request.into_inner();
        let changes = (|| -> Result<ProfileChanges, InvalidField> {
            Ok(ProfileChanges {
                display_name: display_name
                    .as_deref()
                    .map(DisplayName::parse)
                    .transpose()?,
                bio: bio.as_deref().map(Bio::parse).transpose()?,
                avatar: match avatar_url.as_deref() {
                    None => None,
                    Some("") => Some(None),
                    Some(raw) => Some(Some(AvatarUrl::parse(raw)?)),
                },
            })
        })()
        .map_err(UserError::from)?;
        let user = self.accounts.update_profile(me, changes).await?;
        Ok(Response::new(private(user)))
    }

    async fn delete_account(
        &self,
        request: Request<DeleteAccountRequest>,
    ) -> Answer<DeleteAccountResponse> {
        let me = me(&request)?;
        self.accounts.delete_account(me).await?;
        Ok(Response::new(DeleteAccountResponse {}))
    }

    async fn follow(&self, request: Request<FollowRequest>) -> Answer<FollowResponse> {
        let me = me(&request)?;
        let target = parse_id("user_id", &request.get_ref().user_id)?;
        self.accounts.follow(me, target).await?;
        Ok(Response::new(FollowResponse {}))
    }

    async fn unfollow(&self, request: Request<FollowRequest>) -> Answer<FollowResponse> {
        let me = me(&request)?;
        let target = parse_id("user_id", &request.get_ref().user_id)?;
        self.accounts.unfollow(me, target).await?;
        Ok(Response::new(FollowResponse {}))
    }

    async fn list_followers(
        &self,
        request: Request<ListFollowsRequest>,
    ) -> Answer<ListFollowsResponse> {
        self.list(request.into_inner(), Direction::Followers).await
    }

    async fn list_following(
        &self,
        request: Request<ListFollowsRequest>,
    ) -> Answer<ListFollowsResponse> {
        self.list(request.into_inner(), Direction::Following).await
    }

    async fn batch_get_profiles(
        &self,
        request: Request<BatchGetProfilesRequest>,
    ) -> Answer<BatchGetProfilesResponse> {
        let ids = platform::field::parse_uuids("ids", &request.get_ref().ids, MAX_BATCH)
            .map_err(UserError::from)?;
        let users = self.accounts.profiles(&ids).await?;
        Ok(Response::new(BatchGetProfilesResponse {
            profiles: users.into_iter().map(profile).collect(),
        }))
    }

    async fn list_all_following(
        &self,
        request: Request<ListAllFollowingRequest>,
    ) -> Answer<ListAllFollowingResponse> {
        let ListAllFollowingRequest { user_id, limit } = request.into_inner();
        let user = parse_id("user_id", &user_id)?;
        let followees = self.accounts.all_following(user, limit).await?;
        Ok(Response::new(ListAllFollowingResponse {
            followees: followees
                .into_iter()
                .map(|(id, username, display_name)| Followee {
                    id: id.to_string(),
                    username,
                    display_name,
                })
                .collect(),
        }))
    }
}

impl UserApi {
    async fn list(
        &self,
        request: ListFollowsRequest,
        direction: Direction,
    ) -> Answer<ListFollowsResponse> {
        let ListFollowsRequest {
            user_id,
            page_size,
            page_token,
        } = request;
        let user = parse_id("user_id", &user_id)?;
        let (size, cursor) = parse_request(page_size, &page_token).map_err(UserError::from)?;
        let (users, next) = self.accounts.follows(user, direction, size, cursor).await?;
        Ok(Response::new(ListFollowsResponse {
            users: users.into_iter().map(profile).collect(),
            next_page_token: next.map(|c| c.encode()).unwrap_or_default(),
        }))
    }
}
