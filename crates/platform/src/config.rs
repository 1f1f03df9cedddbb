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
    /// Serve CPU profiles (`/debug/pprof/profile`) on the admin port. Off unless turned on:
    /// profiling costs CPU, and the admin port must stay internal.
    #[serde(default)]
    pub profiling: bool,
    /// gRPC services: concurrent RPCs one connection may have in flight; more wait.
    pub grpc_concurrency_per_connection: usize,
    /// gRPC services: longest an RPC may run before it is answered DEADLINE_EXCEEDED, in
    /// milliseconds.
    pub grpc_request_timeout_ms: u64,
    /// gRPC services: RPCs that may run longer (or must run shorter) than that, e.g.
    /// streamed uploads.
    #[serde(default)]
    pub grpc_request_timeouts: Vec<RpcTimeout>,
    /// gRPC services: largest request message accepted, in bytes (larger: RESOURCE_EXHAUSTED).
    pub grpc_max_message_bytes: usize,
}

impl ServerSettings {
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    pub fn grpc_request_timeout(&self) -> Duration {
        Duration::from_millis(self.grpc_request_timeout_ms)
    }

    /// The longest `rpc` (`/package.Service/Method`) may run.
    pub fn grpc_request_timeout_of(&self, path: &str) -> Duration {
        let path = path.strip_prefix('/').unwrap_or(path);
        self.grpc_request_timeouts
            .iter()
            .find(|t| t.rpc == path)
            .map_or_else(
                || self.grpc_request_timeout(),
                |t| Duration::from_millis(t.ms),
            )
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

/// Authentication: token signing (user-service) and verification (gateway), the internal
/// identity tokens between processes, and the protection of logins. One section for every
/// process; each reads what it needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// HMAC-SHA256 key of access tokens, at least 32 bytes. The same on gateway and user-service.
    pub jwt_secret: SecretString,
    /// HMAC-SHA256 key of the internal identity tokens, at least 32 bytes. The same on every
    /// process: the gateway signs one per call, services verify it (and sign their own calls).
    pub internal_token_secret: SecretString,
    /// Accept the built-in development keys. Only for a developer machine and tests.
    #[serde(default)]
    pub allow_development_key: bool,
    /// Lifetime of an access token, in seconds.
    pub access_token_ttl_secs: u64,
    /// Lifetime of a refresh token, in seconds (renewed by every rotation).
    pub refresh_token_ttl_secs: u64,
    /// Longest a session (a refresh token family) lives, however often it is rotated, in seconds.
    pub session_max_lifetime_secs: u64,
    /// How long after a rotation the previous refresh token may be presented again (a
    /// client retrying after a lost response) without counting as reuse, in seconds.
    pub refresh_reuse_grace_secs: u64,
    /// Failed logins for one account within the window that lock it.
    pub max_failed_logins: u32,
    /// The window failed logins are counted in, in seconds.
    pub failed_login_window_secs: u64,
    /// How long a locked account stays locked, in seconds.
    pub lockout_secs: u64,
    /// Distinct accounts one client address may fail to log into within the window before
    /// it counts as suspicious (credential stuffing).
    pub suspicious_accounts_per_ip: u32,
    /// Password hashes computed at once (each argon2id hash holds 19 MiB while it runs).
    pub max_concurrent_hashes: usize,
    /// How long a login or registration waits for a hashing slot before it is refused
    /// (503 with Retry-After), in milliseconds.
    pub hash_queue_timeout_ms: u64,
}

/// What a process that only verifies and signs internal identity tokens reads of `[auth]`
/// (the section's other keys are for the gateway and user-service).
#[derive(Debug, Clone, Deserialize)]
pub struct InternalAuthSettings {
    /// See [`AuthSettings::internal_token_secret`].
    pub internal_token_secret: SecretString,
    /// See [`AuthSettings::allow_development_key`].
    #[serde(default)]
    pub allow_development_key: bool,
}

/// The development default of `auth.jwt_secret`, refused unless `auth.allow_development_key`.
pub const DEV_JWT_SECRET: &str = "socialflow-dev-only-jwt-secret-change-me-please";
/// The development default of `auth.internal_token_secret`, refused likewise.
pub const DEV_INTERNAL_TOKEN_SECRET: &str = "socialflow-dev-only-internal-token-secret-change-me";

/// A signing key: at least 32 bytes, and not the built-in development key unless allowed.
fn check_key(
    key: &str,
    secret: &SecretString,
    development: &str,
    allow_development_key: bool,
) -> Result<(), ConfigError> {
    use secrecy::ExposeSecret;
    let secret = secret.expose_secret();
    if secret.len() < 32 {
        return Err(ConfigError::invalid(key, "must be at least 32 bytes"));
    }
    if secret == development && !allow_development_key {
        let var = format!("{ENV_PREFIX}__{}", key.to_uppercase().replace('.', "__"));
        return Err(ConfigError::invalid(
            key,
            format!(
                "is the built-in development key; set {var} (or auth.allow_development_key = \
                 true on a developer machine)"
            ),
        ));
    }
    Ok(())
}

impl InternalAuthSettings {
    /// The part every process has (all of it, here).
    pub fn internal(&self) -> Self {
        self.clone()
    }

    /// Refuses a short key, and the development key unless allowed.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_key(
            "auth.internal_token_secret",
            &self.internal_token_secret,
            DEV_INTERNAL_TOKEN_SECRET,
            self.allow_development_key,
        )
    }
}

impl AuthSettings {
    /// The part every process has.
    pub fn internal(&self) -> InternalAuthSettings {
        InternalAuthSettings {
            internal_token_secret: self.internal_token_secret.clone(),
            allow_development_key: self.allow_development_key,
        }
    }

    /// Refuses short keys, the development keys unless allowed, and zero limits.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_key(
            "auth.jwt_secret",
            &self.jwt_secret,
            DEV_JWT_SECRET,
            self.allow_development_key,
        )?;
        self.internal().validate()?;
        for (key, value) in [
            ("auth.max_failed_logins", u64::from(self.max_failed_logins)),
            ("auth.access_token_ttl_secs", self.access_token_ttl_secs),
            ("auth.refresh_token_ttl_secs", self.refresh_token_ttl_secs),
            (
                "auth.session_max_lifetime_secs",
                self.session_max_lifetime_secs,
            ),
            (
                "auth.max_concurrent_hashes",
                self.max_concurrent_hashes as u64,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be at least 1"));
            }
        }
        Ok(())
    }
}

/// How long this process waits for the services it calls: each RPC's deadline travels in
/// `grpc-timeout`, and the call ends when it passes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcClientSettings {
    /// The deadline of an RPC not listed in `timeouts`, in milliseconds.
    pub timeout_ms: u64,
    /// Deadlines of particular RPCs.
    #[serde(default)]
    pub timeouts: Vec<RpcTimeout>,
    /// The circuit breaker of each upstream (`platform::breaker`).
    #[serde(default)]
    pub breaker: crate::breaker::BreakerSettings,
}

/// One RPC's deadline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpcTimeout {
    /// `socialflow.<svc>.v1.<Service>/<Method>`.
    pub rpc: String,
    /// In milliseconds.
    pub ms: u64,
}

impl GrpcClientSettings {
    /// Refuses zero deadlines and RPCs that do not exist.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.timeout_ms == 0 {
            return Err(ConfigError::invalid(
                "grpc_client.timeout_ms",
                "must be at least 1",
            ));
        }
        for t in &self.timeouts {
            let known = proto::METHODS
                .iter()
                .any(|(service, method)| t.rpc.split_once('/') == Some((*service, *method)));
            if !known {
                return Err(ConfigError::invalid(
                    "grpc_client.timeouts",
                    format!(
                        "`{}` is not an RPC of ours (`package.Service/Method`)",
                        t.rpc
                    ),
                ));
            }
            if t.ms == 0 {
                return Err(ConfigError::invalid(
                    "grpc_client.timeouts",
                    format!("the deadline of `{}` must be at least 1 ms", t.rpc),
                ));
            }
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
        grpc_concurrency_per_connection = 8
        grpc_request_timeout_ms = 1000
        grpc_max_message_bytes = 1024
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

    fn auth(secret: &str, allow_development_key: bool) -> AuthSettings {
        AuthSettings {
            jwt_secret: secret.to_owned().into(),
            internal_token_secret: "an-internal-secret-of-more-than-32-bytes".to_owned().into(),
            allow_development_key,
            access_token_ttl_secs: 900,
            refresh_token_ttl_secs: 3600,
            session_max_lifetime_secs: 86400,
            refresh_reuse_grace_secs: 30,
            max_failed_logins: 5,
            failed_login_window_secs: 900,
            lockout_secs: 900,
            suspicious_accounts_per_ip: 5,
            max_concurrent_hashes: 4,
            hash_queue_timeout_ms: 1000,
        }
    }

    #[test]
    fn the_development_keys_are_refused_unless_explicitly_allowed() {
        let err = auth(DEV_JWT_SECRET, false)
            .validate()
            .expect_err("the development key without the opt-in");
        let message = err.to_string();
        assert!(message.contains("`auth.jwt_secret`"), "{message}");
        assert!(
            message.contains("SOCIALFLOW__AUTH__JWT_SECRET"),
            "{message}"
        );
        assert!(auth(DEV_JWT_SECRET, true).validate().is_ok());

        let internal = InternalAuthSettings {
            internal_token_secret: DEV_INTERNAL_TOKEN_SECRET.to_owned().into(),
            allow_development_key: false,
        };
        let err = internal.validate().expect_err("development internal key");
        assert!(
            err.to_string().contains("`auth.internal_token_secret`"),
            "{err}"
        );

        assert!(auth("too-short", true).validate().is_err());
        assert!(
            auth("a-real-secret-of-more-than-32-bytes-here", false)
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn processes_listen_on_loopback_unless_told_otherwise() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s: Sample = load(
            &[SHARED_DEFAULTS, "[server]\nport = 1\nadmin_port = 2\n"],
            &sources(dir.path(), &[]),
        )
        .expect("valid");
        assert_eq!(s.server.host, "127.0.0.1");
    }

    #[test]
    fn rpc_deadlines_name_rpcs_that_exist() {
        let settings = |rpc: &str, ms| GrpcClientSettings {
            timeout_ms: 10_000,
            timeouts: vec![RpcTimeout {
                rpc: rpc.to_owned(),
                ms,
            }],
            breaker: crate::breaker::BreakerSettings::default(),
        };
        assert!(
            settings("socialflow.user.v1.UserService/Login", 5_000)
                .validate()
                .is_ok()
        );
        let err = settings("socialflow.user.v1.UserService/Lgoin", 5_000)
            .validate()
            .expect_err("misspelt");
        assert!(err.to_string().contains("grpc_client.timeouts"), "{err}");
        assert!(
            settings("socialflow.user.v1.UserService/Login", 0)
                .validate()
                .is_err()
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
