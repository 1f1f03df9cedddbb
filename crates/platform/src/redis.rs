//! The Redis client (fred) with a reconnect policy and timeouts set: fred has neither by
//! default, which turns a Redis outage into requests hanging forever.

use std::time::Duration;

use fred::prelude::{ClientLike, Config, ReconnectPolicy};
use secrecy::ExposeSecret;
use tracing::Instrument;

use crate::config::{ConfigError, RedisSettings};

pub use fred::prelude::Client as RedisClient;

/// Builds the client and starts connecting in the background; it keeps reconnecting
/// forever (with backoff), so a process starts and serves while Redis is down, and
/// readiness tells the truth meanwhile.
pub fn client(settings: &RedisSettings) -> Result<RedisClient, ConfigError> {
    let config = Config::from_url(settings.url.expose_secret())
        .map_err(|e| ConfigError::invalid("redis.url", e))?;
    let command_timeout = Duration::from_millis(settings.command_timeout_ms);
    let client = fred::types::Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = Duration::from_millis(settings.connect_timeout_ms);
            c.internal_command_timeout = command_timeout;
            c.max_command_attempts = 1;
        })
        .with_performance_config(|p| {
            p.default_command_timeout = command_timeout;
        })
        // 0 attempts = retry forever; 100 ms doubling up to 2 s: back within ~2 s of Redis.
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2))
        .build()
        .map_err(|e| ConfigError::invalid("redis", e))?;
    // The connection task; it ends when the client quits.
    let connection = client.connect();
    tokio::spawn(async move {
        if let Ok(Err(e)) = connection.await {
            tracing::warn!(error = %e, "redis connection task ended");
        }
    });
    Ok(client)
}

/// `PING`: the readiness and `/health/detailed` probe.
pub async fn ping(client: &RedisClient) -> Result<(), String> {
    let span = tracing::debug_span!("redis.ping");
    client
        .ping::<String>(None)
        .instrument(span)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Publishes `redis_connections_active{service}` every few seconds.
pub fn spawn_connection_gauge(client: RedisClient, service: &'static str) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            let connected = if client.is_connected() { 1.0 } else { 0.0 };
            metrics::gauge!(telemetry::metrics::REDIS_CONNECTIONS_ACTIVE, "service" => service)
                .set(connected);
        }
    });
}

/// `{global prefix}{service prefix}{rest}`: every key a service writes goes through this so
/// tests (and tenants) can be isolated by prefix.
#[derive(Debug, Clone)]
pub struct KeySpace {
    prefix: String,
}

impl KeySpace {
    pub fn new(global_prefix: &str, service_prefix: &str) -> Self {
        Self {
            prefix: format!("{global_prefix}{service_prefix}"),
        }
    }

    pub fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    /// `<prefix><kind>:<id>`, written once into one string.
    pub fn key_of(&self, kind: &str, id: impl std::fmt::Display) -> String {
        use std::fmt::Write as _;
        let mut key = String::with_capacity(self.prefix.len() + kind.len() + 40);
        key.push_str(&self.prefix);
        key.push_str(kind);
        key.push(':');
        let _ = write!(key, "{id}");
        key
    }
}
