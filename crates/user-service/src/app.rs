//! user-service's use cases, one method each: typed, validated arguments in (the domain's
//! types, the caller as a [`UserId`]), domain values or a [`UserError`] out. No protobuf
//! and no `tonic::Status` here; `grpc.rs` translates.

use chrono::{DateTime, Utc};
use platform::config::AuthSettings;
use platform::jwt::{self, Claims};
use platform::pagination::{Cursor, PageSize};
use secrecy::ExposeSecret;
use telemetry::events::Category;
use uuid::Uuid;

use crate::crypto::{self, HashError, Hasher};
use crate::domain::{
    AvatarUrl, Bio, DisplayName, Email, InvalidField, Login, NewPassword, Password, SessionRules,
    UserId, Username,
};
use crate::error::UserError;
use crate::security::{Attempt, LoginGuard, account_key, failed_login, security_event};
use crate::store::{Followed, Rotation, Store, User};

/// Ids one batched lookup takes (a page of authors).
pub const MAX_BATCH: usize = 100;
/// Followees one home feed draws from.
pub const MAX_FOLLOWING: u32 = 5000;

/// What the use cases work with: the `users` schema, login protection in Redis, the
/// bounded password hasher, and the token settings.
pub struct Accounts {
    store: Store,
    guard: LoginGuard,
    hasher: Hasher,
    auth: AuthSettings,
}

/// A new account, every field valid.
#[derive(Debug)]
pub struct Registration {
    pub email: Email,
    pub username: Username,
    pub password: NewPassword,
    pub display_name: DisplayName,
}

/// What a login or a refresh hands out.
#[derive(Debug)]
pub struct Session {
    pub user_id: UserId,
    pub access_token: String,
    /// Seconds the access token is valid.
    pub expires_in: u64,
    pub refresh_token: String,
}

/// A profile change; `None` leaves a field as it is, `avatar: Some(None)` clears it.
#[derive(Debug, Default)]
pub struct ProfileChanges {
    pub display_name: Option<DisplayName>,
    pub bio: Option<Bio>,
    pub avatar: Option<Option<AvatarUrl>>,
}

/// Which side of the follow relation a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Followers,
    Following,
}

fn secs(s: u64) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000))
}

fn user_event(event_type: &'static str, user: UserId) {
    telemetry::business_event!(Category::User, event_type, user_id = %user);
}

impl Accounts {
    pub fn new(store: Store, guard: LoginGuard, hasher: Hasher, auth: AuthSettings) -> Self {
        Self {
            store,
            guard,
            hasher,
            auth,
        }
    }

    pub async fn register(&self, r: Registration) -> Result<User, UserError> {
        let hash = self.hasher.hash(r.password.expose().to_owned()).await?;
        let user = self
            .store
            .create_user(&r.email, &r.username, &r.display_name, &hash)
            .await?;
        metrics::counter!(telemetry::metrics::USER_REGISTRATIONS_TOTAL).increment(1);
        user_event("user_registered", UserId(user.id));
        Ok(user)
    }

    /// Known or unknown, every login takes the same steps in the same order, so neither
    /// the answers nor their timing tell which accounts exist. The attempt is counted
    /// before the password is checked: parallel guesses cannot outrun the lock.
    pub async fn login(
        &self,
        login: &Login,
        password: Password,
        client_ip: &str,
    ) -> Result<Session, UserError> {
        let (user_id, hash) = match self.store.credentials(login.as_str()).await? {
            Some((id, hash)) => (Some(id), hash),
            None => (None, None),
        };
        let account = account_key(user_id.as_ref(), login.as_str());
        match self.guard.reserve(&account).await {
            Attempt::Allowed => {}
            locked @ (Attempt::Locked | Attempt::LockedNow) => {
                failed_login("locked");
                if locked == Attempt::LockedNow {
                    security_event("account_locked", "medium", user_id.as_ref());
                }
                return Err(UserError::Locked {
                    retry_after_secs: self.guard.lockout_secs(),
                });
            }
        }
        let verified = match self.hasher.verify(password.into_inner(), hash).await {
            Ok(verified) => verified,
            Err(e) => {
                if matches!(e, HashError::Busy) {
                    self.guard.give_back(&account).await;
                }
                return Err(e.into());
            }
        };
        let user_id = match (verified, user_id) {
            (true, Some(user_id)) => user_id,
            (_, user_id) => {
                failed_login(if user_id.is_some() {
                    "bad_password"
                } else {
                    "unknown_user"
                });
                if self.guard.record_source_failure(client_ip, &account).await {
                    flag_credential_stuffing();
                }
                return Err(UserError::BadCredentials);
            }
        };
        self.guard.record_success(&account).await;
        let session = self.start_session(UserId(user_id)).await?;
        user_event("user_logged_in", session.user_id);
        Ok(session)
    }

    /// Rotates a refresh token: a new access token and refresh token in the same session.
    pub async fn refresh(&self, presented: &str) -> Result<Session, UserError> {
        let (new_token, new_hash) = crypto::new_refresh_token().map_err(internal)?;
        let rules = SessionRules {
            max_lifetime: secs(self.auth.session_max_lifetime_secs),
            reuse_grace: secs(self.auth.refresh_reuse_grace_secs),
        };
        let rotation = self
            .store
            .rotate_refresh_token(
                &crypto::refresh_token_hash(presented),
                &new_hash,
                self.refresh_expiry(),
                &rules,
            )
            .await?;
        match rotation {
            Rotation::Rotated { user_id } => self.session(UserId(user_id), new_token).await,
            Rotation::Invalid => Err(UserError::InvalidRefreshToken),
            Rotation::Reused { user_id } => {
                security_event("refresh_token_reuse", "high", Some(&user_id));
                Err(UserError::InvalidRefreshToken)
            }
        }
    }

    /// Ends the session of a refresh token; an unknown token ends nothing.
    pub async fn logout(&self, presented: &str) -> Result<(), UserError> {
        self.store
            .revoke_family(&crypto::refresh_token_hash(presented))
            .await?;
        Ok(())
    }

    pub async fn user(&self, id: Uuid) -> Result<User, UserError> {
        self.store
            .user(id)
            .await?
            .ok_or_else(|| UserError::NotFound(format!("no user with id {id}")))
    }

    pub async fn user_by_username(&self, username: &Username) -> Result<User, UserError> {
        self.store
            .user_by_username(username.as_str())
            .await?
            .ok_or_else(|| UserError::NotFound(format!("no user named {}", username.as_str())))
    }

    pub async fn me(&self, me: UserId) -> Result<User, UserError> {
        self.store.user(me.0).await?.ok_or_else(gone)
    }

    pub async fn update_profile(
        &self,
        me: UserId,
        changes: ProfileChanges,
    ) -> Result<User, UserError> {
        let ProfileChanges {
            display_name,
            bio,
            avatar,
        } = changes;
        let user = self
            .store
            .update_profile(
                me.0,
                display_name.as_ref().map(DisplayName::as_str),
                bio.as_ref().map(Bio::as_str),
                avatar.as_ref().map(|a| a.as_ref().map(AvatarUrl::as_str)),
            )
            .await?
            .ok_or_else(gone)?;
        user_event("profile_updated", me);
        Ok(user)
    }

    pub async fn delete_account(&self, me: UserId) -> Result<(), UserError> {
        if !self.store.delete_user(me.0).await? {
            return Err(gone());
        }
        user_event("account_deleted", me);
        Ok(())
    }

    /// Following twice changes nothing.
    pub async fn follow(&self, me: UserId, target: Uuid) -> Result<(), UserError> {
        not_self(me, target, "follow")?;
        match self.store.follow(me.0, target).await? {
            Followed::Yes => {
                user_event("user_followed", me);
                Ok(())
            }
            Followed::NoFollower => Err(gone()),
            Followed::NoFollowee => Err(UserError::NotFound(format!("no user with id {target}"))),
        }
    }

    /// Unfollowing someone not followed changes nothing.
    pub async fn unfollow(&self, me: UserId, target: Uuid) -> Result<(), UserError> {
        not_self(me, target, "unfollow")?;
        self.store.unfollow(me.0, target).await?;
        user_event("user_unfollowed", me);
        Ok(())
    }

    /// One page of `user`'s followers or followees, newest follow first.
    pub async fn follows(
        &self,
        user: Uuid,
        direction: Direction,
        size: PageSize,
        cursor: Option<Cursor>,
    ) -> Result<(Vec<User>, Option<Cursor>), UserError> {
        let followers = direction == Direction::Followers;
        let (users, next) = self
            .store
            .follows_page(user, followers, size, cursor)
            .await?;
        // Only an empty page can mean the user does not exist.
        if users.is_empty() && self.store.user(user).await?.is_none() {
            return Err(UserError::NotFound(format!("no user with id {user}")));
        }
        Ok((users, next))
    }

    /// The profiles of `ids` that exist (at most [`MAX_BATCH`] ids).
    pub async fn profiles(&self, ids: &[Uuid]) -> Result<Vec<User>, UserError> {
        if ids.len() > MAX_BATCH {
            return Err(InvalidField::new(
                "ids",
                format!("at most {MAX_BATCH} ids at once, got {}", ids.len()),
            )
            .into());
        }
        Ok(self.store.users(ids).await?)
    }

    /// Everyone `user` follows, most recent follow first, at most `limit` (1..=5000; 0
    /// means all up to 5000).
    pub async fn all_following(
        &self,
        user: Uuid,
        limit: u32,
    ) -> Result<Vec<(Uuid, String, String)>, UserError> {
        let limit = match limit {
            0 => MAX_FOLLOWING,
            n if n <= MAX_FOLLOWING => n,
            n => {
                return Err(InvalidField::new(
                    "limit",
                    format!("limit must be at most {MAX_FOLLOWING}, got {n}"),
                )
                .into());
            }
        };
        Ok(self.store.all_following(user, i64::from(limit)).await?)
    }

    /// A new session (token family) for `user`.
    async fn start_session(&self, user: UserId) -> Result<Session, UserError> {
        let (refresh_token, hash) = crypto::new_refresh_token().map_err(internal)?;
        self.store
            .store_refresh_token(&hash, Uuid::new_v4(), user.0, self.refresh_expiry())
            .await?;
        self.session(user, refresh_token).await
    }

    fn refresh_expiry(&self) -> DateTime<Utc> {
        Utc::now() + secs(self.auth.refresh_token_ttl_secs)
    }

    /// The tokens of a session: the access token carries the user's role as it is now
    /// (a role change shows in the next access token, within its lifetime).
    async fn session(&self, user: UserId, refresh_token: String) -> Result<Session, UserError> {
        let role = self.store.role(user.0).await?.filter(|r| r != "user");
        let now = Utc::now().timestamp();
        let ttl = self.auth.access_token_ttl_secs;
        let claims = Claims {
            sub: user.to_string(),
            iat: now,
            exp: now + secs(ttl).num_seconds(),
            jti: Uuid::new_v4().to_string(),
            role,
        };
        Ok(Session {
            user_id: user,
            access_token: jwt::sign(self.auth.jwt_secret.expose_secret().as_bytes(), &claims),
            expires_in: ttl,
            refresh_token,
        })
    }
}

/// The caller's own account is gone (deleted since their access token was issued).
fn gone() -> UserError {
    UserError::NotFound("this account no longer exists".to_owned())
}

fn not_self(me: UserId, target: Uuid, verb: &str) -> Result<(), UserError> {
    if me.0 == target {
        return Err(InvalidField::new("user_id", format!("you cannot {verb} yourself")).into());
    }
    Ok(())
}

fn internal(e: impl std::fmt::Display) -> UserError {
    UserError::Internal(e.to_string())
}

fn flag_credential_stuffing() {
    metrics::counter!(
        telemetry::metrics::SUSPICIOUS_ACTIVITY_TOTAL,
        "activity_type" => "credential_stuffing"
    )
    .increment(1);
    security_event("credential_stuffing", "high", None);
}

/// The use cases run directly, without gRPC: against a database and key prefix of their
/// own where they need one, and with none where the rule decides before any I/O.
#[cfg(test)]
mod tests {
    use std::time::Duration;

    use fred::prelude::ClientLike;
    use platform::config::{DatabaseSettings, RedisSettings};
    use platform::redis::KeySpace;
    use platform::service::Service as _;
    use testkit::TestDatabase;

    use super::*;

    fn auth() -> AuthSettings {
        AuthSettings {
            jwt_secret: "a-test-jwt-secret-of-more-than-32-bytes".to_owned().into(),
            internal_token_secret: "a-test-internal-secret-of-32-bytes-plus".to_owned().into(),
            allow_development_key: false,
            access_token_ttl_secs: 900,
            refresh_token_ttl_secs: 3600,
            session_max_lifetime_secs: 86_400,
            refresh_reuse_grace_secs: 0,
            max_failed_logins: 3,
            // Short, so what a test leaves in Redis expires soon after.
            failed_login_window_secs: 60,
            lockout_secs: 60,
            suspicious_accounts_per_ip: 100,
            max_concurrent_hashes: 2,
            hash_queue_timeout_ms: 5_000,
        }
    }

    fn database(url: &str) -> DatabaseSettings {
        DatabaseSettings {
            url: url.to_owned().into(),
            max_connections: 4,
            acquire_timeout_ms: 3_000,
            connect_timeout_ms: 3_000,
            statement_timeout_ms: 10_000,
        }
    }

    /// Accounts over `db` (migrated) and a Redis key prefix of its own.
    async fn accounts(db: &TestDatabase) -> Accounts {
        let pool = platform::database::pool(&database(db.url())).expect("pool");
        platform::database::migrate(&pool, crate::Service::SCHEMA, crate::Service::MIGRATIONS)
            .await
            .expect("migrations");
        let redis = platform::redis::client(&RedisSettings {
            url: std::env::var("SOCIALFLOW_TEST_REDIS")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
                .into(),
            key_prefix: String::new(),
            command_timeout_ms: 1_000,
            connect_timeout_ms: 1_000,
        })
        .expect("redis client");
        redis.wait_for_connect().await.expect("redis");
        let keys = KeySpace::new(&format!("test:{}:", testkit::unique_suffix()), "user:");
        let auth = auth();
        Accounts::new(
            Store(platform::database::Db::new(pool)),
            LoginGuard::new(redis, keys, &auth),
            Hasher::new(2, Duration::from_secs(5)),
            auth,
        )
    }

    async fn register(accounts: &Accounts, name: &str) -> User {
        accounts
            .register(Registration {
                email: Email::parse(&format!("{name}@example.com")).expect("email"),
                username: Username::parse(name).expect("username"),
                password: NewPassword::parse("correct horse battery staple", name).expect("pw"),
                display_name: DisplayName::parse(name).expect("display name"),
            })
            .await
            .expect("registered")
    }

    fn password(raw: &str) -> Password {
        Password::parse(raw.to_owned()).expect("password")
    }

    #[tokio::test]
    async fn following_yourself_is_refused_before_anything_is_looked_up() {
        // A pool that could never connect: the rule decides first.
        let pool = platform::database::pool(&database("postgres://nobody@127.0.0.1:1/none"))
            .expect("pool");
        let redis = platform::redis::client(&RedisSettings {
            url: "redis://127.0.0.1:1".to_owned().into(),
            key_prefix: String::new(),
            command_timeout_ms: 100,
            connect_timeout_ms: 100,
        })
        .expect("client");
        let accounts = Accounts::new(
            Store(platform::database::Db::new(pool)),
            LoginGuard::new(redis, KeySpace::new("", "user:"), &auth()),
            Hasher::new(1, Duration::from_secs(1)),
            auth(),
        );
        let me = UserId(Uuid::new_v4());
        for result in [
            accounts.follow(me, me.0).await,
            accounts.unfollow(me, me.0).await,
        ] {
            match result {
                Err(UserError::Invalid(field)) => assert_eq!(field.field, "user_id"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_registered_user_logs_in_by_either_name_and_the_session_refreshes() {
        let db = TestDatabase::create().await;
        let accounts = accounts(&db).await;
        let ann = register(&accounts, "ann").await;
        let pw = "correct horse battery staple";
        let by_name = accounts
            .login(&Login::parse("ann").expect("login"), password(pw), "")
            .await;
        let by_email = accounts
            .login(
                &Login::parse("ANN@example.com").expect("login"),
                password(pw),
                "",
            )
            .await;
        for session in [&by_name, &by_email] {
            assert_eq!(session.as_ref().expect("logged in").user_id, UserId(ann.id));
        }
        let session = by_name.expect("logged in");
        let renewed = accounts
            .refresh(&session.refresh_token)
            .await
            .expect("renewed");
        assert_ne!(renewed.refresh_token, session.refresh_token);
        // With no grace, the spent token presented again ends the session.
        assert!(matches!(
            accounts.refresh(&session.refresh_token).await,
            Err(UserError::InvalidRefreshToken)
        ));
        assert!(matches!(
            accounts.refresh(&renewed.refresh_token).await,
            Err(UserError::InvalidRefreshToken)
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wrong_passwords_are_bad_credentials_until_the_account_locks_for_every_spelling() {
        let db = TestDatabase::create().await;
        let accounts = accounts(&db).await;
        register(&accounts, "bob").await;
        let bob = Login::parse("bob").expect("login");
        for _ in 0..3 {
            assert!(matches!(
                accounts.login(&bob, password("not the password"), "").await,
                Err(UserError::BadCredentials)
            ));
        }
        for login in ["bob", "bob@example.com"] {
            let right = password("correct horse battery staple");
            match accounts
                .login(&Login::parse(login).expect("login"), right, "")
                .await
            {
                Err(UserError::Locked { retry_after_secs }) => assert_eq!(retry_after_secs, 60),
                other => panic!("{login}: {other:?}"),
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_same_email_or_username_in_any_letter_case_is_taken() {
        let db = TestDatabase::create().await;
        let accounts = accounts(&db).await;
        register(&accounts, "cyd").await;
        let again = accounts
            .register(Registration {
                email: Email::parse("CYD@example.com").expect("email"),
                username: Username::parse("someone_else").expect("username"),
                password: NewPassword::parse("correct horse battery staple", "x").expect("pw"),
                display_name: DisplayName::parse("Cyd").expect("name"),
            })
            .await;
        assert!(matches!(again, Err(UserError::Taken("email"))), "{again:?}");
    }
}
