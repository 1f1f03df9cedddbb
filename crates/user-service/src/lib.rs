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

use platform::config::{AuthSettings, DatabaseSettings, RedisSettings, ServerSettings};
use platform::database::Migration;
use platform::health::Probe;
use platform::redis::KeySpace;
use platform::service::{Parts, Shared};
use proto::user::v1::user_service_server::UserServiceServer;
use serde::Deserialize;
use telemetry::TelemetrySettings;
use tonic::service::Routes;

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub auth: AuthSettings,
    pub telemetry: TelemetrySettings,
}

platform::process_settings!(Settings);

/// user-service, as the platform runs it.
pub struct Service;

impl platform::service::Service for Service {
    const NAME: &'static str = "user-service";
    const CRATE: &'static str = env!("CARGO_CRATE_NAME");
    const SCHEMA: &'static str = "users";
    const MIGRATIONS: &'static [Migration] = &[
        Migration {
            version: 1,
            name: "users",
            sql: include_str!("../migrations/0001_users.sql"),
        },
        Migration {
            version: 2,
            name: "auth_and_follows",
            sql: include_str!("../migrations/0002_auth_and_follows.sql"),
        },
        Migration {
            version: 3,
            name: "session_lifetime",
            sql: include_str!("../migrations/0003_session_lifetime.sql"),
        },
    ];
    const DEFAULTS: &'static str = include_str!("../config/default.toml");
    type Settings = Settings;

    async fn build(settings: &Settings, shared: &Shared) -> anyhow::Result<Parts> {
        security::register_series();
        let redis = platform::redis::client(&settings.redis)?;
        platform::redis::spawn_connection_gauge(redis.clone(), Self::NAME);
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
        Ok(Parts::new(Routes::new(
            UserServiceServer::new(api)
                .max_decoding_message_size(shared.server.grpc_max_message_bytes),
        ))
        .with_dependency("redis", Probe::Redis(redis)))
    }
}
