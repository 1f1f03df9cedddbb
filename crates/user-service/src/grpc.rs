//! The tonic service: validates and converts, calls the store, converts back.

use chrono::Utc;
use platform::config::AuthSettings;
use platform::jwt::{self, Claims};
use platform::pagination::parse_request;
use proto::user::v1::user_service_server::UserService;
use proto::user::v1::{
    DeleteAccountRequest, DeleteAccountResponse, FollowRequest, FollowResponse, GetMeRequest,
    GetUserByUsernameRequest, GetUserRequest, ListFollowsRequest, ListFollowsResponse,
    LoginRequest, LogoutRequest, LogoutResponse, PrivateProfile, Profile, RefreshRequest,
    RegisterRequest, Tokens, UpdateProfileRequest,
};
use secrecy::ExposeSecret;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::crypto::{self, HashError, Hasher};
use crate::domain::{
    AvatarUrl, Bio, DisplayName, Email, InvalidField, Login, NewPassword, Username,
};
use crate::security::{Attempt, LoginGuard, account_key, failed_login, security_event};
use crate::store::{CreateError, Followed, Rotation, SessionRules, Store, User};

const BAD_CREDENTIALS: &str = "invalid login or password";
/// The one answer for a locked account, whichever spelling of it was tried and whenever:
/// nothing in it (no remaining time) can tie an email to a username.
const LOCKED: &str = "this account is temporarily locked after too many failed logins";

pub struct UserApi {
    store: Store,
    guard: LoginGuard,
    hasher: Hasher,
    auth: AuthSettings,
}

impl UserApi {
    pub fn new(store: Store, guard: LoginGuard, hasher: Hasher, auth: AuthSettings) -> Self {
        Self {
            store,
            guard,
            hasher,
            auth,
        }
    }

    fn session_rules(&self) -> SessionRules {
        let secs = |s: u64| chrono::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 2));
        SessionRules {
            session_max_lifetime: secs(self.auth.session_max_lifetime_secs),
            reuse_grace: secs(self.auth.refresh_reuse_grace_secs),
        }
    }

    /// A fresh access token and a refresh token in `family`.
    async fn issue_tokens(&self, user_id: Uuid, family: Uuid) -> Result<Tokens, Status> {
        let (refresh_token, hash) = crypto::new_refresh_token().map_err(internal)?;
        self.store
            .store_refresh_token(&hash, family, user_id, self.refresh_expiry())
            .await?;
        Ok(self.tokens(user_id, refresh_token))
    }

    fn refresh_expiry(&self) -> chrono::DateTime<Utc> {
        Utc::now()
            + chrono::Duration::seconds(
                i64::try_from(self.auth.refresh_token_ttl_secs).unwrap_or(i64::MAX / 2),
            )
    }

    fn tokens(&self, user_id: Uuid, refresh_token: String) -> Tokens {
        let now = Utc::now().timestamp();
        let ttl = self.auth.access_token_ttl_secs;
        let claims = Claims {
            sub: user_id.to_string(),
            iat: now,
            exp: now + i64::try_from(ttl).unwrap_or(i64::MAX / 2),
            jti: Uuid::new_v4().to_string(),
        };
        Tokens {
            access_token: jwt::sign(self.auth.jwt_secret.expose_secret().as_bytes(), &claims),
            expires_in: ttl,
            refresh_token,
            user_id: user_id.to_string(),
        }
    }
}

fn invalid(e: InvalidField) -> Status {
    Status::invalid_argument(e.to_string())
}

impl From<HashError> for Status {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Busy => platform::grpc::overloaded(
                "too many sign-ins are being checked right now; try again shortly",
                1,
            ),
            HashError::Failed(e) => internal(e),
        }
    }
}

fn internal(e: impl std::fmt::Display) -> Status {
    tracing::error!(error = %e, "internal failure");
    Status::internal("internal error")
}

fn parse_id(field: &str, raw: &str) -> Result<Uuid, Status> {
    Uuid::parse_str(raw)
        .map_err(|_| Status::invalid_argument(format!("{field} must be a UUID, got `{raw}`")))
}

/// The signed-in caller, as the internal identity token proves it.
fn caller<T>(request: &Request<T>) -> Result<Uuid, Status> {
    platform::identity::Caller::require_user(request)
}

fn profile(u: &User) -> Profile {
    Profile {
        id: u.id.to_string(),
        username: u.username.clone(),
        display_name: u.display_name.clone(),
        bio: u.bio.clone(),
        avatar_url: u.avatar_url.clone(),
        created_at: u.created_at.to_rfc3339(),
        followers_count: u64::try_from(u.followers).unwrap_or(0),
        following_count: u64::try_from(u.following).unwrap_or(0),
    }
}

fn private(u: &User) -> PrivateProfile {
    PrivateProfile {
        profile: Some(profile(u)),
        email: u.email.clone(),
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
    async fn register(
        &self,
        request: Request<RegisterRequest>,
    ) -> Result<Response<PrivateProfile>, Status> {
        let r = request.into_inner();
        let email = Email::parse(&r.email).map_err(invalid)?;
        let username = Username::parse(&r.username).map_err(invalid)?;
        let password = NewPassword::parse(&r.password, username.as_str()).map_err(invalid)?;
        let display_name = DisplayName::parse(&r.display_name).map_err(invalid)?;
        let hash = self.hasher.hash(password.expose().to_owned()).await?;
        let user = self
            .store
            .create_user(&email, &username, &display_name, &hash)
            .await?;
        metrics::counter!(telemetry::metrics::USER_REGISTRATIONS_TOTAL).increment(1);
        tracing::info!(user_id = %user.id, "user registered");
        Ok(Response::new(private(&user)))
    }

    async fn login(&self, request: Request<LoginRequest>) -> Result<Response<Tokens>, Status> {
        let r = request.into_inner();
        let login = Login::parse(&r.login).map_err(invalid)?;
        if r.password.is_empty() {
            return Err(Status::invalid_argument("password: is required"));
        }
        if r.password.len() > platform::MAX_LOGIN_PASSWORD_BYTES {
            return Err(Status::invalid_argument(format!(
                "password: must be at most {} bytes",
                platform::MAX_LOGIN_PASSWORD_BYTES
            )));
        }
        let found = self.store.credentials(login.as_str()).await?;
        let (user_id, hash) = match found {
            Some((id, hash)) => (Some(id), hash),
            None => (None, None),
        };
        let account = account_key(user_id.as_ref(), login.as_str());
        // Known or unknown, the same steps in the same order, so neither the answers nor
        // their timing tell which accounts exist. The attempt is counted before the password
        // is checked: parallel guesses cannot outrun the lock.
        match self.guard.reserve(&account).await {
            Attempt::Allowed => {}
            locked @ (Attempt::Locked | Attempt::LockedNow) => {
                failed_login("locked");
                if locked == Attempt::LockedNow {
                    security_event("account_locked", "medium", user_id.as_ref());
                }
                return Err(platform::grpc::exhausted(LOCKED, self.guard.lockout_secs()));
            }
        }
        if !self.hasher.verify(r.password, hash).await? {
            failed_login(if user_id.is_some() {
                "bad_password"
            } else {
                "unknown_user"
            });
            if self
                .guard
                .record_source_failure(&r.client_ip, &account)
                .await
            {
                flag_credential_stuffing();
            }
            return Err(Status::unauthenticated(BAD_CREDENTIALS));
        }
        let Some(user_id) = user_id else {
            return Err(Status::unauthenticated(BAD_CREDENTIALS));
        };
        self.guard.record_success(&account).await;
        let tokens = self.issue_tokens(user_id, Uuid::new_v4()).await?;
        tracing::info!(user_id = %user_id, "logged in");
        Ok(Response::new(tokens))
    }

    async fn refresh(&self, request: Request<RefreshRequest>) -> Result<Response<Tokens>, Status> {
        let presented = request.into_inner().refresh_token;
        if presented.is_empty() {
            return Err(Status::invalid_argument("refresh_token: is required"));
        }
        let (new_token, new_hash) = crypto::new_refresh_token().map_err(internal)?;
        let rotation = self
            .store
            .rotate_refresh_token(
                &crypto::refresh_token_hash(&presented),
                &new_hash,
                self.refresh_expiry(),
                &self.session_rules(),
            )
            .await?;
        match rotation {
            Rotation::Rotated { user_id } => Ok(Response::new(self.tokens(user_id, new_token))),
            Rotation::Invalid => Err(Status::unauthenticated(
                "the refresh token is invalid or expired",
            )),
            Rotation::Reused { user_id } => {
                security_event("refresh_token_reuse", "high", Some(&user_id));
                Err(Status::unauthenticated(
                    "the refresh token is invalid or expired",
                ))
            }
        }
    }

    async fn logout(
        &self,
        request: Request<LogoutRequest>,
    ) -> Result<Response<LogoutResponse>, Status> {
        let token = request.into_inner().refresh_token;
        if token.is_empty() {
            return Err(Status::invalid_argument("refresh_token: is required"));
        }
        self.store
            .revoke_family(&crypto::refresh_token_hash(&token))
            .await?;
        Ok(Response::new(LogoutResponse {}))
    }

    async fn get_user(
        &self,
        request: Request<GetUserRequest>,
    ) -> Result<Response<Profile>, Status> {
        let id = parse_id("id", &request.get_ref().id)?;
        let user = self
            .store
            .user(id)
            .await?
            .ok_or_else(|| Status::not_found(format!("no user with id {id}")))?;
        Ok(Response::new(profile(&user)))
    }

    async fn get_user_by_username(
        &self,
        request: Request<GetUserByUsernameRequest>,
    ) -> Result<Response<Profile>, Status> {
        let username = Username::parse(&request.get_ref().username).map_err(invalid)?;
        let user = self
            .store
            .user_by_username(username.as_str())
            .await?
            .ok_or_else(|| Status::not_found(format!("no user named {}", username.as_str())))?;
        Ok(Response::new(profile(&user)))
    }

    async fn get_me(
        &self,
        request: Request<GetMeRequest>,
    ) -> Result<Response<PrivateProfile>, Status> {
        let me = caller(&request)?;
        let user = self
            .store
            .user(me)
            .await?
            .ok_or_else(|| Status::not_found("this account no longer exists"))?;
        Ok(Response::new(private(&user)))
    }

    async fn update_profile(
        &self,
        request: Request<UpdateProfileRequest>,
    ) -> Result<Response<PrivateProfile>, Status> {
        let me = caller(&request)?;
        let r = request.into_inner();
        let display_name = r
            .display_name
            .as_deref()
            .map(DisplayName::parse)
            .transpose()
            .map_err(invalid)?;
        let bio = r
            .bio
            .as_deref()
            .map(Bio::parse)
            .transpose()
            .map_err(invalid)?;
        let avatar = match r.avatar_url.as_deref() {
            None => None,
            Some("") => Some(None),
            Some(raw) => Some(Some(AvatarUrl::parse(raw).map_err(invalid)?)),
        };
        let updated = self
            .store
            .update_profile(
                me,
                display_name.as_ref().map(DisplayName::as_str),
                bio.as_ref().map(Bio::as_str),
                avatar.as_ref().map(|a| a.as_ref().map(AvatarUrl::as_str)),
            )
            .await?;
        let user = updated.ok_or_else(|| Status::not_found("this account no longer exists"))?;
        Ok(Response::new(private(&user)))
    }

    async fn delete_account(
        &self,
        request: Request<DeleteAccountRequest>,
    ) -> Result<Response<DeleteAccountResponse>, Status> {
        let me = caller(&request)?;
        if !self.store.delete_user(me).await? {
            return Err(Status::not_found("this account no longer exists"));
        }
        tracing::info!(user_id = %me, "account deleted");
        Ok(Response::new(DeleteAccountResponse {}))
    }

    async fn follow(
        &self,
        request: Request<FollowRequest>,
    ) -> Result<Response<FollowResponse>, Status> {
        let (me, target) = follow_pair(&request, "follow")?;
        match self.store.follow(me, target).await? {
            Followed::Yes => Ok(Response::new(FollowResponse {})),
            Followed::NoFollower => Err(Status::not_found("this account no longer exists")),
            Followed::NoFollowee => Err(Status::not_found(format!("no user with id {target}"))),
        }
    }

    async fn unfollow(
        &self,
        request: Request<FollowRequest>,
    ) -> Result<Response<FollowResponse>, Status> {
        let (me, target) = follow_pair(&request, "unfollow")?;
        self.store.unfollow(me, target).await?;
        Ok(Response::new(FollowResponse {}))
    }

    async fn list_followers(
        &self,
        request: Request<ListFollowsRequest>,
    ) -> Result<Response<ListFollowsResponse>, Status> {
        self.list(request.into_inner(), true).await
    }

    async fn list_following(
        &self,
        request: Request<ListFollowsRequest>,
    ) -> Result<Response<ListFollowsResponse>, Status> {
        self.list(request.into_inner(), false).await
    }
}

impl UserApi {
    async fn list(
        &self,
        r: ListFollowsRequest,
        followers: bool,
    ) -> Result<Response<ListFollowsResponse>, Status> {
        let user = parse_id("user_id", &r.user_id)?;
        let (size, cursor) =
            parse_request(r.page_size, &r.page_token).map_err(Status::invalid_argument)?;
        let (users, next) = self
            .store
            .follows_page(user, followers, size, cursor)
            .await?;
        // Only an empty page can mean the user does not exist.
        if users.is_empty() && self.store.user(user).await?.is_none() {
            return Err(Status::not_found(format!("no user with id {user}")));
        }
        Ok(Response::new(ListFollowsResponse {
            users: users.iter().map(profile).collect(),
            next_page_token: next.map(|c| c.encode()).unwrap_or_default(),
        }))
    }
}

/// The caller and the user they (un)follow, who must be someone else.
fn follow_pair(request: &Request<FollowRequest>, verb: &str) -> Result<(Uuid, Uuid), Status> {
    let me = caller(request)?;
    let target = parse_id("user_id", &request.get_ref().user_id)?;
    if me == target {
        return Err(Status::invalid_argument(format!(
            "user_id: you cannot {verb} yourself"
        )));
    }
    Ok((me, target))
}

fn flag_credential_stuffing() {
    metrics::counter!(
        telemetry::metrics::SUSPICIOUS_ACTIVITY_TOTAL,
        "activity_type" => "credential_stuffing"
    )
    .increment(1);
    security_event("credential_stuffing", "high", None);
}
