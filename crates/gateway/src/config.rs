use platform::config::{
    AuthSettings, ConfigError, DatabaseSettings, GrpcClientSettings, RedisSettings, S3Settings,
    ServerSettings, Sources,
};
use serde::Deserialize;
use telemetry::TelemetrySettings;

/// Where the services listen (gRPC URLs).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicesSettings {
    /// user-service, e.g. `http://user-service:50051`.
    pub user: String,
    /// video-service, e.g. `http://video-service:50052`.
    pub video: String,
    /// engagement-service, e.g. `http://engagement-service:50053`.
    pub engagement: String,
    /// payments-service, e.g. `http://payments-service:50054`.
    pub payments: String,
}

/// The HTTP edge itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Largest request body accepted, in bytes; larger ones get 413.
    pub max_body_bytes: usize,
    /// actix-web worker threads.
    pub workers: usize,
    /// Reverse proxies (load balancer, ingress) in front of the gateway that append to
    /// `X-Forwarded-For`. 0: the client is the connection's peer. N: the client is the N-th
    /// address from the right of `X-Forwarded-For` (anything further left is client-supplied
    /// and not trusted). Rate limits and abuse detection key on this address.
    #[serde(default)]
    pub trusted_proxy_hops: usize,
    /// How long a client may take to send a request's head, in milliseconds (slow clients
    /// holding connections open get 408).
    pub client_request_timeout_ms: u64,
    /// Connections each worker serves at once; more wait in the listen queue.
    pub max_connections: usize,
    /// Requests served at once by this process; more are shed at once with 503 and
    /// Retry-After (health checks excepted), before latency grows for everyone.
    pub max_in_flight: usize,
}

/// One rate: `per_minute` sustained, up to `burst` at once.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// Requests per minute, sustained.
    pub per_minute: u32,
    /// Requests allowed at once before the sustained rate applies.
    pub burst: u32,
}

/// Rate limits by kind of request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// When Redis is unreachable: limit in this process with the same rates (logged), rather
    /// than answer 503.
    pub fail_open: bool,
    /// `POST /api/v1/auth/login`, per client address.
    pub login: Rate,
    /// `POST /api/v1/auth/register`, per client address.
    pub register: Rate,
    /// Other API requests without a valid access token, per client address.
    pub anonymous: Rate,
    /// API requests with a valid access token, per user.
    pub authenticated: Rate,
}

/// Video uploads through the gateway: what it reads of the `[uploads]` section (the other
/// keys are video-service's).
#[derive(Debug, Clone, Deserialize)]
pub struct UploadSettings {
    /// Largest video accepted, in bytes: a larger declared body is refused (413) before it
    /// is read, and a stream that grows past it is cut off (413).
    pub max_size_bytes: u64,
}

/// Daily and monthly active users.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivitySettings {
    /// How often the gauges are recomputed, in seconds.
    pub refresh_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub http: HttpSettings,
    pub services: ServicesSettings,
    pub grpc_client: GrpcClientSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub s3: S3Settings,
    pub auth: AuthSettings,
    pub rate_limit: RateLimitSettings,
    pub cache: crate::cache::CacheSettings,
    pub uploads: UploadSettings,
    pub activity: ActivitySettings,
    pub telemetry: TelemetrySettings,
}

platform::process_settings!(Settings);

impl Settings {
    pub fn load_from(sources: &Sources) -> Result<Self, ConfigError> {
        let settings: Self =
            platform::service::load_settings(include_str!("../config/default.toml"), sources)?;
        for (key, rate) in [
            ("rate_limit.login", settings.rate_limit.login),
            ("rate_limit.register", settings.rate_limit.register),
            ("rate_limit.anonymous", settings.rate_limit.anonymous),
            (
                "rate_limit.authenticated",
                settings.rate_limit.authenticated,
            ),
        ] {
            if rate.per_minute == 0 || rate.burst == 0 {
                return Err(ConfigError::invalid(
                    key,
                    "per_minute and burst must be at least 1",
                ));
            }
        }
        settings.grpc_client.validate()?;
        if settings.cache.video_ttl_ms > crate::cache::MAX_TTL_MS {
            return Err(ConfigError::invalid(
                "cache.video_ttl_ms",
                "must be at most 86400000 (a day)",
            ));
        }
        if settings.activity.refresh_secs == 0 {
            return Err(ConfigError::invalid(
                "activity.refresh_secs",
                "must be at least 1",
            ));
        }
        if settings.http.workers == 0 {
            return Err(ConfigError::invalid("http.workers", "must be at least 1"));
        }
        if settings.http.max_connections == 0 {
            return Err(ConfigError::invalid(
                "http.max_connections",
                "must be at least 1",
            ));
        }
        if settings.http.max_body_bytes == 0 {
            return Err(ConfigError::invalid(
                "http.max_body_bytes",
                "must be at least 1",
            ));
        }
        Ok(settings)
    }
}
