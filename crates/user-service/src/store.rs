//! SQL for schema `users`.

use chrono::{DateTime, Utc};
use platform::database::{Db, DbError, db_span};
use platform::pagination::{Cursor, PageSize, split_page};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tracing::Instrument;
use uuid::Uuid;

use crate::domain::{
    DisplayName, Email, PresentedToken, RotationDecision, SessionRules, Username, decide_rotation,
};

/// A user as others see them, plus the email only the owner sees.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub username: String,
    pub display_name: String,
    pub bio: String,
    pub avatar_url: Option<String>,
    pub created_at: DateTime<Utc>,
    pub followers: i64,
    pub following: i64,
}

/// The columns of a [`User`] (of `users.users u`), as a literal so every query built on it
/// is a constant.
macro_rules! profile {
    () => {
        "u.id, u.email, u.username, u.display_name, u.bio, u.avatar_url, u.created_at,
        (SELECT count(*) FROM users.follows f WHERE f.followee_id = u.id) AS followers,
        (SELECT count(*) FROM users.follows f WHERE f.follower_id = u.id) AS following"
    };
}

/// A page of follows: the users on the `$other` side of the listed user's `$anchor` side,
/// first page or after a cursor.
macro_rules! follows_page_sql {
    ($anchor:literal, $other:literal) => {
        (
            concat!(
                "SELECT ",
                profile!(),
                ", f.created_at AS followed_at
                 FROM users.follows f JOIN users.users u ON u.id = f.",
                $other,
                "
                 WHERE f.",
                $anchor,
                " = $1
                 ORDER BY f.created_at DESC, f.",
                $other,
                " DESC LIMIT $2"
            ),
            concat!(
                "SELECT ",
                profile!(),
                ", f.created_at AS followed_at
                 FROM users.follows f JOIN users.users u ON u.id = f.",
                $other,
                "
                 WHERE f.",
                $anchor,
                " = $1 AND (f.created_at, f.",
                $other,
                ") < ($2, $3)
                 ORDER BY f.created_at DESC, f.",
                $other,
                " DESC LIMIT $4"
            ),
        )
    };
}

const FOLLOWERS_PAGE: (&str, &str) = follows_page_sql!("followee_id", "follower_id");
const FOLLOWING_PAGE: (&str, &str) = follows_page_sql!("follower_id", "followee_id");

fn user(row: &Row) -> User {
    User {
        id: row.get("id"),
        email: row.get("email"),
        username: row.get("username"),
        display_name: row.get("display_name"),
        bio: row.get("bio"),
        avatar_url: row.get("avatar_url"),
        created_at: row.get("created_at"),
        followers: row.get("followers"),
        following: row.get("following"),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// `email` or `username` already belongs to someone (compared case-insensitively).
    #[error("{0} is already taken")]
    Taken(&'static str),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// What asking to follow led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Followed {
    Yes,
    /// The follower's account is gone.
    NoFollower,
    /// The account to follow does not exist.
    NoFollowee,
}

/// What presenting a refresh token led to.
#[derive(Debug, Clone, PartialEq)]
pub enum Rotation {
    /// Valid: it is now used, and `new_hash` was stored in its family.
    Rotated { user_id: Uuid },
    /// Unknown, expired or revoked.
    Invalid,
    /// Already rotated once: a copy is being replayed. The family is now revoked.
    Reused { user_id: Uuid },
}

/// The family of the refresh token `hash`, locked for the rest of the transaction so that
/// rotations and logouts of one session happen one after the other.
async fn lock_family(
    tx: &deadpool_postgres::Transaction<'_>,
    hash: &[u8],
) -> Result<Option<Uuid>, tokio_postgres::Error> {
    let Some(row) = tx
        .query_opt(
            "SELECT family_id FROM users.refresh_tokens WHERE token_hash = $1",
            &[&hash],
        )
        .await?
    else {
        return Ok(None);
    };
    let family: Uuid = row.get(0);
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1::uuid::text, 0))",
        &[&family],
    )
    .await?;
    Ok(Some(family))
}

/// The `users` schema.
#[derive(Clone)]
pub struct Store(pub Db);

impl Store {
    pub async fn create_user(
        &self,
        email: &Email,
        username: &Username,
        display_name: &DisplayName,
        password_hash: &str,
    ) -> Result<User, CreateError> {
        let inserted = self
            .0
            .query_one(
                "INSERT",
                "users.users",
                // A new account has no follows yet: the profile comes back with the insert.
                "INSERT INTO users.users AS u (id, email, username, display_name, password_hash)
                 VALUES ($1, $2, $3, $4, $5)
                 RETURNING u.id, u.email, u.username, u.display_name, u.bio, u.avatar_url,
                           u.created_at, 0::bigint AS followers, 0::bigint AS following",
                &[
                    &Uuid::now_v7(),
                    &email.as_str(),
                    &username.as_str(),
                    &display_name.as_str(),
                    &password_hash,
                ],
            )
            .await;
        match inserted {
            Ok(row) => Ok(user(&row)),
            Err(e) if e.sqlstate() == Some(&SqlState::UNIQUE_VIOLATION) => {
                Err(match e.constraint() {
                    Some("users_username_key") => CreateError::Taken("username"),
                    _ => CreateError::Taken("email"),
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn user(&self, id: Uuid) -> Result<Option<User>, DbError> {
        let sql = concat!("SELECT ", profile!(), " FROM users.users u WHERE u.id = $1");
        Ok(self
            .0
            .query_opt("SELECT", "users.users", sql, &[&id])
            .await?
            .as_ref()
            .map(user))
    }

    pub async fn user_by_username(&self, username: &str) -> Result<Option<User>, DbError> {
        let sql = concat!(
            "SELECT ",
            profile!(),
            " FROM users.users u WHERE lower(u.username) = lower($1)"
        );
        Ok(self
            .0
            .query_opt("SELECT", "users.users", sql, &[&username])
            .await?
            .as_ref()
            .map(user))
    }

    /// The id and password hash of the account `login` (an email or a username) names.
    pub async fn credentials(
        &self,
        login: &str,
    ) -> Result<Option<(Uuid, Option<String>)>, DbError> {
        let row = self
            .0
            .query_opt(
                "SELECT",
                "users.users",
                "SELECT id, password_hash FROM users.users
                 WHERE lower(email) = lower($1) OR lower(username) = lower($1)",
                &[&login],
            )
            .await?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    /// Changes what is given (`avatar_url` `Some(None)` clears it) and returns the profile;
    /// `None` when the account is gone.
    pub async fn update_profile(
        &self,
        id: Uuid,
        display_name: Option<&str>,
        bio: Option<&str>,
        avatar_url: Option<Option<&str>>,
    ) -> Result<Option<User>, DbError> {
        let (set_avatar, avatar) = match avatar_url {
            None => (false, None),
            Some(value) => (true, value),
        };
        let sql = concat!(
            "UPDATE users.users u SET
                 display_name = COALESCE($2, u.display_name),
                 bio = COALESCE($3, u.bio),
                 avatar_url = CASE WHEN $4 THEN $5 ELSE u.avatar_url END
             WHERE u.id = $1
             RETURNING ",
            profile!()
        );
        let row = self
            .0
            .query_opt(
                "UPDATE",
                "users.users",
                sql,
                &[&id, &display_name, &bio, &set_avatar, &avatar],
            )
            .await?;
        Ok(row.as_ref().map(user))
    }

    /// Deletes the account; its tokens and follows go with it.
    pub async fn delete_user(&self, id: Uuid) -> Result<bool, DbError> {
        let deleted = self
            .0
            .execute(
                "DELETE",
                "users.users",
                "DELETE FROM users.users WHERE id = $1",
                &[&id],
            )
            .await?;
        Ok(deleted == 1)
    }

    /// A user's role (`user` or `admin`); `None` when the account is gone.
    pub async fn role(&self, id: Uuid) -> Result<Option<String>, DbError> {
        Ok(self
            .0
            .query_opt(
                "SELECT",
                "users.users",
                "SELECT role FROM users.users WHERE id = $1",
                &[&id],
            )
            .await?
            .map(|r| r.get(0)))
    }

    pub async fn store_refresh_token(
        &self,
        hash: &[u8],
        family_id: Uuid,
        user_id: Uuid,
        expires_at: DateTime<Utc>,
    ) -> Result<(), DbError> {
        self.0
            .execute(
                "INSERT",
                "users.refresh_tokens",
                "INSERT INTO users.refresh_tokens (token_hash, family_id, user_id, expires_at)
                 VALUES ($1, $2, $3, $4)",
                &[&hash, &family_id, &user_id, &expires_at],
            )
            .await?;
        Ok(())
    }

    /// Marks the token `old_hash` used and stores `new_hash` in its family, atomically, as
    /// `decide_rotation` rules; or says why not. Serialised with [`Store::revoke_family`]
    /// on the family, so no token rotated concurrently with a logout survives it.
    pub async fn rotate_refresh_token(
        &self,
        old_hash: &[u8],
        new_hash: &[u8],
        expires_at: DateTime<Utc>,
        rules: &SessionRules,
    ) -> Result<Rotation, DbError> {
        async {
            let mut conn = self.0.pool().get().await?;
            let tx = conn.transaction().await?;
            let Some(family) = lock_family(&tx, old_hash).await? else {
                return Ok(Rotation::Invalid);
            };
            let row = tx
                .query_one(
                    "SELECT t.user_id, t.expires_at, t.used_at, t.revoked_at IS NOT NULL,
                            t.session_started_at, t.replaced_by,
                            (s.token_hash IS NOT NULL AND s.used_at IS NULL
                             AND s.revoked_at IS NULL) AS successor_untouched
                     FROM users.refresh_tokens t
                     LEFT JOIN users.refresh_tokens s ON s.token_hash = t.replaced_by
                     WHERE t.token_hash = $1 FOR UPDATE OF t",
                    &[&old_hash],
                )
                .await?;
            let user_id: Uuid = row.get(0);
            let presented = PresentedToken {
                expires_at: row.get(1),
                used_at: row.get(2),
                revoked: row.get(3),
                session_started_at: row.get(4),
                successor_untouched: row.get(6),
            };
            let successor: Option<Vec<u8>> = row.get(5);
            match decide_rotation(&presented, Utc::now(), rules) {
                RotationDecision::Refuse => return Ok(Rotation::Invalid),
                RotationDecision::Replay => {
                    tx.execute(
                        "UPDATE users.refresh_tokens SET revoked_at = now()
                         WHERE family_id = $1 AND revoked_at IS NULL",
                        &[&family],
                    )
                    .await?;
                    tx.commit().await?;
                    return Ok(Rotation::Reused { user_id });
                }
                RotationDecision::RotateAgain => {
                    tx.execute(
                        "UPDATE users.refresh_tokens SET revoked_at = now() WHERE token_hash = $1",
                        &[&successor],
                    )
                    .await?;
                }
                RotationDecision::Rotate => {}
            }
            let started = presented.session_started_at;
            tx.execute(
                "UPDATE users.refresh_tokens SET used_at = COALESCE(used_at, now()), replaced_by = $2
                 WHERE token_hash = $1",
                &[&old_hash, &new_hash],
            )
            .await?;
            tx.execute(
                "INSERT INTO users.refresh_tokens
                     (token_hash, family_id, user_id, expires_at, session_started_at)
                 VALUES ($1, $2, $3, $4, $5)",
                &[&new_hash, &family, &user_id, &expires_at, &started],
            )
            .await?;
            tx.commit().await?;
            Ok(Rotation::Rotated { user_id })
        }
        .instrument(db_span("UPDATE", "users.refresh_tokens"))
        .await
    }

    /// Revokes the family of the token `hash` (logout), after any rotation of it in flight.
    pub async fn revoke_family(&self, hash: &[u8]) -> Result<u64, DbError> {
        async {
            let mut conn = self.0.pool().get().await?;
            let tx = conn.transaction().await?;
            let Some(family) = lock_family(&tx, hash).await? else {
                return Ok(0);
            };
            let revoked = tx
                .execute(
                    "UPDATE users.refresh_tokens SET revoked_at = now()
                     WHERE family_id = $1 AND revoked_at IS NULL",
                    &[&family],
                )
                .await?;
            tx.commit().await?;
            Ok(revoked)
        }
        .instrument(db_span("UPDATE", "users.refresh_tokens"))
        .await
    }

    /// `follower` follows `followee`; following twice changes nothing. `false` when
    /// either account does not exist (the follower's may have been deleted since its access
    /// token was issued).
    pub async fn follow(&self, follower: Uuid, followee: Uuid) -> Result<Followed, DbError> {
        let result = self
            .0
            .execute(
                "INSERT",
                "users.follows",
                "INSERT INTO users.follows (follower_id, followee_id) VALUES ($1, $2)
                 ON CONFLICT DO NOTHING",
                &[&follower, &followee],
            )
            .await;
        match result {
            Ok(_) => Ok(Followed::Yes),
            Err(e) if e.sqlstate() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
                Ok(if e.constraint() == Some("follows_follower_id_fkey") {
                    Followed::NoFollower
                } else {
                    Followed::NoFollowee
                })
            }
            Err(e) => Err(e),
        }
    }

    pub async fn unfollow(&self, follower: Uuid, followee: Uuid) -> Result<(), DbError> {
        self.0
            .execute(
                "DELETE",
                "users.follows",
                "DELETE FROM users.follows WHERE follower_id = $1 AND followee_id = $2",
                &[&follower, &followee],
            )
            .await?;
        Ok(())
    }

    /// The users of `ids` that exist, in no particular order.
    pub async fn users(&self, ids: &[Uuid]) -> Result<Vec<User>, DbError> {
        let sql = concat!(
            "SELECT ",
            profile!(),
            " FROM users.users u WHERE u.id = ANY($1)"
        );
        Ok(self
            .0
            .query("SELECT", "users.users", sql, &[&ids])
            .await?
            .iter()
            .map(user)
            .collect())
    }

    /// Up to `limit` users `follower` follows, most recent follow first: (id, username,
    /// display name) only, one index scan and no counts.
    pub async fn all_following(
        &self,
        follower: Uuid,
        limit: i64,
    ) -> Result<Vec<(Uuid, String, String)>, DbError> {
        Ok(self
            .0
            .query(
                "SELECT",
                "users.follows",
                "SELECT u.id, u.username, u.display_name
                 FROM users.follows f JOIN users.users u ON u.id = f.followee_id
                 WHERE f.follower_id = $1 ORDER BY f.created_at DESC LIMIT $2",
                &[&follower, &limit],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    /// One page of the users who follow `listed` (`followers = true`) or whom `listed`
    /// follows, newest follow first.
    pub async fn follows_page(
        &self,
        listed: Uuid,
        followers: bool,
        size: PageSize,
        cursor: Option<Cursor>,
    ) -> Result<(Vec<User>, Option<Cursor>), DbError> {
        let (first, after) = if followers {
            FOLLOWERS_PAGE
        } else {
            FOLLOWING_PAGE
        };
        let limit = i64::from(size.get()) + 1;
        let rows = match cursor {
            None => {
                self.0
                    .query("SELECT", "users.follows", first, &[&listed, &limit])
                    .await?
            }
            Some(c) => {
                self.0
                    .query(
                        "SELECT",
                        "users.follows",
                        after,
                        &[&listed, &c.created_at, &c.id, &limit],
                    )
                    .await?
            }
        };
        let page: Vec<(User, DateTime<Utc>)> = rows
            .iter()
            .map(|r| (user(r), r.get("followed_at")))
            .collect();
        let (page, next) = split_page(page, size, |(u, at)| Cursor {
            created_at: *at,
            id: u.id,
        });
        Ok((page.into_iter().map(|(u, _)| u).collect(), next))
    }
}
