//! Layered settings: compiled-in defaults → `config/<env>.toml` → `SOCIALFLOW__SECTION__KEY`
//! environment variables. A bad or missing value fails start with one line naming the key.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use secrecy::SecretString;
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Environment variable prefix: `SOCIALFLOW__DATABASE__URL` sets `database.url`.
pub const ENV_PREFIX: &str = "SOCIALFLOW";
/// Which `config/<env>.toml` to read (default `local`).
pub const ENV_NAME_VAR: &str = "SOCIALFLOW_ENV";
/// Where the `config/` directory is (default `./config`).
pub const CONFIG_DIR_VAR: &str = "SOCIALFLOW_CONFIG_DIR";

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl ConfigError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    /// A value that parsed but makes no sense.
    pub fn invalid(key: &str, reason: impl std::fmt::Display) -> Self {
        Self(format!("`{key}`: {reason}"))
    }
}

/// Where settings come from. [`Sources::from_process`] in production; tests build their own.
#[derive(Debug, Clone)]
pub struct Sources {
    pub config_dir: PathBuf,
    pub env_name: String,
    pub env: HashMap<String, String>,
}

impl Sources {
    pub fn from_process() -> Self {
        let env: HashMap<String, String> = std::env::vars().collect();
        Self {
            config_dir: env
                .get(CONFIG_DIR_VAR)
                .map_or_else(|| PathBuf::from("config"), PathBuf::from),
            env_name: env
                .get(ENV_NAME_VAR)
                .cloned()
                .unwrap_or_else(|| "local".to_owned()),
            env,
        }
    }

    fn file(&self) -> PathBuf {
        self.config_dir.join(format!("{}.toml", self.env_name))
    }
}

/// Defaults every process shares: local Postgres, Redis and S3-compatible store.
pub const SHARED_DEFAULTS: &str = include_str!("../config/shared-defaults.toml");

/// Loads `T` from `defaults` (TOML texts compiled in, later ones winning), then the
/// optional `config/<env>.toml`, then `SOCIALFLOW__…` variables.
pub fn load<T: DeserializeOwned>(defaults: &[&str], sources: &Sources) -> Result<T, ConfigError> {
    let file = sources.file();
    let env: HashMap<String, String> = sources
        .env
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}__")))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut builder = Config::builder();
    for text in defaults {
        builder = builder.add_source(File::from_str(text, FileFormat::Toml));
    }
    builder
        .add_source(
            File::from(file.as_path())
                .format(FileFormat::Toml)
                .required(false),
        )
        .add_source(
            Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(env)),
        )
        .build()
        .and_then(Config::try_deserialize)
        .map_err(|e| ConfigError::new(e.to_string().replace('\n', " ")))
}

/// Where a process listens. Defaults differ per process (see ARCHITECTURE.md's port table).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Address to bind, `0.0.0.0` in containers, `127.0.0.1` to stay local.
    pub host: String,
    /// API port: REST for the gateway, gRPC for the services.
    pub port: u16,
    /// Admin HTTP port: `/metrics` and `/health/*`.
    pub admin_port: u16,
    /// How long in-flight requests may take to finish once shutdown begins, in seconds.
    pub shutdown_grace_secs: u64,
    /// Serve the fault injection routes (`/admin/faults`) on the admin port, for drills.
    /// Off unless turned on: anyone who reaches the admin port could break the service.
    #[serde(default)]
    pub fault_injection: bool,
}

impl ServerSettings {
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

/// The Postgres database; each service uses its own schema in it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `postgres://user:password@host:port/database`.
    pub url: SecretString,
    /// Pool size.
    pub max_connections: usize,
    /// How long a request waits for a free connection before failing, in milliseconds.
    pub acquire_timeout_ms: u64,
    /// How long opening a new connection may take, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Per-statement timeout set on every connection, in milliseconds.
    pub statement_timeout_ms: u64,
}

/// Redis, shared by all services; keys are prefixed by service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://host:port/db`.
    pub url: SecretString,
    /// Prepended to every key, before the service's own prefix (`eng:` …). Empty in production.
    pub key_prefix: String,
    /// How long one command may take before it fails, in milliseconds.
    pub command_timeout_ms: u64,
    /// How long connecting may take, in milliseconds.
    pub connect_timeout_ms: u64,
}

/// Authentication: token signing (user-service) and verification (gateway), and the
/// protection of logins. One section for both processes, which read what they need.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// HMAC-SHA256 key of access tokens, at least 32 bytes. The same on gateway and user-service.
    pub jwt_secret: SecretString,
    /// Lifetime of an access token, in seconds.
    pub access_token_ttl_secs: u64,
    /// Lifetime of a refresh token, in seconds.
    pub refresh_token_ttl_secs: u64,
    /// Failed logins for one account within the window that lock it.
    pub max_failed_logins: u32,
    /// The window failed logins are counted in, in seconds.
    pub failed_login_window_secs: u64,
    /// How long a locked account stays locked, in seconds.
    pub lockout_secs: u64,
    /// Distinct accounts one client address may fail to log into within the window before
    /// it counts as suspicious (credential stuffing).
    pub suspicious_accounts_per_ip: u32,
}

/// The development default of `auth.jwt_secret`, refused outside the `local`,
/// `development` and `test` environments.
pub const DEV_JWT_SECRET: &str = "socialflow-dev-only-jwt-secret-change-me-please";

impl AuthSettings {
    /// Refuses a short key, and the development key outside development.
    pub fn validate(&self, environment: &str) -> Result<(), ConfigError> {
        use secrecy::ExposeSecret;
        let secret = self.jwt_secret.expose_secret();
        if secret.len() < 32 {
            return Err(ConfigError::invalid(
                "auth.jwt_secret",
                "must be at least 32 bytes",
            ));
        }
        if secret == DEV_JWT_SECRET && !["local", "development", "test"].contains(&environment) {
            return Err(ConfigError::invalid(
                "auth.jwt_secret",
                "is the development default; set SOCIALFLOW__AUTH__JWT_SECRET",
            ));
        }
        if self.max_failed_logins == 0
            || self.access_token_ttl_secs == 0
            || self.refresh_token_ttl_secs == 0
        {
            return Err(ConfigError::invalid(
                "auth",
                "max_failed_logins and token lifetimes must be positive",
            ));
        }
        Ok(())
    }
}

/// The S3-compatible object store holding videos.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    /// Endpoint URL, e.g. `http://127.0.0.1:9900` (s3s-fs) or `http://minio:9000`. Empty: AWS.
    pub endpoint: String,
    /// Region name signed into requests.
    pub region: String,
    /// Bucket holding the videos.
    pub bucket: String,
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: SecretString,
    /// Timeout for one S3 operation, in milliseconds.
    pub timeout_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[derive(Debug, Deserialize)]
    struct Sample {
        server: ServerSettings,
    }

    const DEFAULTS: &str = r#"
        [server]
        host = "127.0.0.1"
        port = 50052
        admin_port = 9002
        shutdown_grace_secs = 20
    "#;

    fn sources(dir: &Path, env: &[(&str, &str)]) -> Sources {
        Sources {
            config_dir: dir.to_path_buf(),
            env_name: "staging".into(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn defaults_then_file_then_environment() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("staging.toml"),
            "[server]\nport = 6000\nadmin_port = 6001\n",
        )
        .expect("write");
        let s: Sample = load(
            &[DEFAULTS],
            &sources(dir.path(), &[("SOCIALFLOW__SERVER__ADMIN_PORT", "7001")]),
        )
        .expect("valid");
        assert_eq!(s.server.host, "127.0.0.1", "default kept");
        assert_eq!(s.server.port, 6000, "file overrides default");
        assert_eq!(s.server.admin_port, 7001, "environment overrides file");
    }

    #[test]
    fn a_bad_value_names_its_key_on_one_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = load::<Sample>(
            &[DEFAULTS],
            &sources(dir.path(), &[("SOCIALFLOW__SERVER__PORT", "eighty")]),
        )
        .expect_err("not a number");
        let message = err.to_string();
        assert!(message.contains("server.port"), "{message}");
        assert!(!message.contains('\n'), "{message}");
    }

    #[test]
    fn the_development_jwt_key_is_refused_outside_development() {
        let auth = |secret: &str| AuthSettings {
            jwt_secret: secret.to_owned().into(),
            access_token_ttl_secs: 900,
            refresh_token_ttl_secs: 3600,
            max_failed_logins: 5,
            failed_login_window_secs: 900,
            lockout_secs: 900,
            suspicious_accounts_per_ip: 5,
        };
        assert!(auth(DEV_JWT_SECRET).validate("local").is_ok());
        for env in ["production", "prod", "staging"] {
            let err = auth(DEV_JWT_SECRET).validate(env).expect_err(env);
            assert!(err.to_string().contains("auth.jwt_secret"), "{err}");
        }
        assert!(auth("too-short").validate("local").is_err());
        assert!(
            auth("a-real-secret-of-more-than-32-bytes-here")
                .validate("production")
                .is_ok()
        );
    }

    #[test]
    fn a_misspelt_key_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = load::<Sample>(
            &[DEFAULTS],
            &sources(dir.path(), &[("SOCIALFLOW__SERVER__PROT", "1")]),
        )
        .expect_err("unknown key");
        assert!(err.to_string().contains("prot"), "{err}");
    }
}
