//! SQL for schema `users`.

use chrono::{DateTime, Utc};
use platform::database::{DbError, PgPool, db_span};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tracing::Instrument;
use uuid::Uuid;

use crate::domain::{DisplayName, Email, Username};

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub username: String,
    pub display_name: String,
    pub created_at: DateTime<Utc>,
}

fn user(row: &Row) -> User {
    User {
        id: row.get("id"),
        email: row.get("email"),
        username: row.get("username"),
        display_name: row.get("display_name"),
        created_at: row.get("created_at"),
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

#[derive(Clone)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub async fn create_user(
        &self,
        email: &Email,
        username: &Username,
        display_name: &DisplayName,
    ) -> Result<User, CreateError> {
        let result = async {
            let conn = self.pool.get().await?;
            let stmt = conn
                .prepare_cached(
                    "INSERT INTO users.users (id, email, username, display_name)
                     VALUES ($1, $2, $3, $4)
                     RETURNING id, email, username, display_name, created_at",
                )
                .await?;
            let row = conn
                .query_one(
                    &stmt,
                    &[
                        &Uuid::now_v7(),
                        &email.as_str(),
                        &username.as_str(),
                        &display_name.as_str(),
                    ],
                )
                .await?;
            Ok::<_, DbError>(user(&row))
        }
        .instrument(db_span("INSERT", "users.users"))
        .await;
        result.map_err(|e| {
            if e.sqlstate() == Some(&SqlState::UNIQUE_VIOLATION) {
                match e.constraint() {
                    Some("users_username_key") => CreateError::Taken("username"),
                    _ => CreateError::Taken("email"),
                }
            } else {
                CreateError::Db(e)
            }
        })
    }

    pub async fn user(&self, id: Uuid) -> Result<Option<User>, DbError> {
        async {
            let conn = self.pool.get().await?;
            let stmt = conn
                .prepare_cached(
                    "SELECT id, email, username, display_name, created_at
                     FROM users.users WHERE id = $1",
                )
                .await?;
            Ok(conn.query_opt(&stmt, &[&id]).await?.as_ref().map(user))
        }
        .instrument(db_span("SELECT", "users.users"))
        .await
    }
}
