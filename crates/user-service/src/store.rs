//! SQL for schema `users`.

use chrono::{DateTime, Utc};
use platform::database::{Db, DbError};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
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
    db: Db,
}

impl Store {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub async fn create_user(
        &self,
        email: &Email,
        username: &Username,
        display_name: &DisplayName,
    ) -> Result<User, CreateError> {
        let result = self
            .db
            .query_one(
                "INSERT",
                "users.users",
                "INSERT INTO users.users (id, email, username, display_name)
                 VALUES ($1, $2, $3, $4)
                 RETURNING id, email, username, display_name, created_at",
                &[
                    &Uuid::now_v7(),
                    &email.as_str(),
                    &username.as_str(),
                    &display_name.as_str(),
                ],
            )
            .await;
        result.map(|row| user(&row)).map_err(|e| {
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
        let row = self
            .db
            .query_opt(
                "SELECT",
                "users.users",
                "SELECT id, email, username, display_name, created_at
                 FROM users.users WHERE id = $1",
                &[&id],
            )
            .await?;
        Ok(row.as_ref().map(user))
    }
}
