//! user-service: accounts, authentication and follows (schema `users`), and the login
//! protection kept in Redis (keys `user:`).

mod app;
mod crypto;
pub mod domain;
mod error;
mod grpc;
mod security;
mod store;

use std::time::Duration;

use platform::config::{AuthSettings, RedisSettings};
use platform::health::Probe;
use platform::redis::KeySpace;
use platform::service::{Parts, Shared};
use proto::user::v1::user_service_server::UserServiceServer;

platform::grpc_service! {
    pub struct Service: "user-service", schema "users", build build,
    defaults include_str!("../config/default.toml"),
    settings { redis: RedisSettings, auth: AuthSettings },
    migrations [
        (1, "users", include_str!("../migrations/0001_users.sql")),
        (2, "auth_and_follows", include_str!("../migrations/0002_auth_and_follows.sql")),
        (3, "session_lifetime", include_str!("../migrations/0003_session_lifetime.sql")),
        (4, "roles", include_str!("../migrations/0004_roles.sql")),
    ]
}

async fn build(settings: &Settings, shared: &Shared) -> anyhow::Result<Parts> {
    security::register_series();
    let redis = platform::redis::client(&settings.redis)?;
    platform::redis::spawn_connection_gauge(redis.clone(), "user-service");
    let guard = security::LoginGuard::new(
        redis.clone(),
        KeySpace::new(&settings.redis.key_prefix, "user:"),
        &settings.auth,
    );
    let hasher = crypto::Hasher::new(
        settings.auth.max_concurrent_hashes,
        Duration::from_millis(settings.auth.hash_queue_timeout_ms),
    );
    let api = grpc::UserApi::new(app::Accounts::new(
        store::Store(shared.db.clone()),
        guard,
        hasher,
        settings.auth.clone(),
    ));
    let max = shared.max_message_bytes();
    Ok(
        Parts::grpc(UserServiceServer::new(api).max_decoding_message_size(max))
            .with_dependency("redis", Probe::Redis(redis)),
    )
}
