use platform::config::{
    ConfigError, DatabaseSettings, RedisSettings, S3Settings, ServerSettings, Sources,
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
}

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub http: HttpSettings,
    pub services: ServicesSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub s3: S3Settings,
    pub telemetry: TelemetrySettings,
}

impl platform::process::ProcessSettings for Settings {
    fn server(&self) -> &ServerSettings {
        &self.server
    }
    fn telemetry(&self) -> &TelemetrySettings {
        &self.telemetry
    }
}

impl Settings {
    pub fn load_from(sources: &Sources) -> Result<Self, ConfigError> {
        let settings: Self =
            platform::service::load_settings(include_str!("../config/default.toml"), sources)?;
        if settings.http.workers == 0 {
            return Err(ConfigError::invalid("http.workers", "must be at least 1"));
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
