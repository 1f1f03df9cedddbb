//! Login protection kept in Redis: attempts per account are reserved before the password is
//! checked and lock it for a while past the limit, and one client address failing on many
//! accounts is flagged. Redis trouble never blocks a login:
//! the checks fail open and say so in the log.

use fred::prelude::{ClientLike, HyperloglogInterface, KeysInterface};
use fred::types::ExpireOptions;
use fred::types::scripts::Script;
use platform::config::AuthSettings;
use platform::redis::{KeySpace, RedisClient};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Counts a security event: the metric, and a structured log line for the SIEM.
pub fn security_event(event_type: &'static str, severity: &'static str, user_id: Option<&Uuid>) {
    metrics::counter!(
        telemetry::metrics::SECURITY_EVENTS_TOTAL,
        "event_type" => event_type,
        "severity" => severity
    )
    .increment(1);
    let user_id = user_id.map(tracing::field::display);
    telemetry::security_event!(event_type, severity, user_id);
}

/// Creates every security series at 0 at start: a counter that first appears at 1 hides its
/// first event from `rate()` and `increase()`, and the first account lock would not alert.
pub fn register_series() {
    use telemetry::metrics as m;
    metrics::counter!(m::USER_REGISTRATIONS_TOTAL).increment(0);
    for reason in ["unknown_user", "bad_password", "locked"] {
        metrics::counter!(m::FAILED_LOGINS_TOTAL, "reason" => reason).increment(0);
    }
    for (event_type, severity) in [
        ("account_locked", "medium"),
        ("refresh_token_reuse", "high"),
        ("credential_stuffing", "high"),
    ] {
        metrics::counter!(m::SECURITY_EVENTS_TOTAL, "event_type" => event_type, "severity" => severity)
            .increment(0);
    }
    metrics::counter!(m::SUSPICIOUS_ACTIVITY_TOTAL, "activity_type" => "credential_stuffing")
        .increment(0);
    metrics::counter!(m::PASSWORD_HASHING_REJECTED_TOTAL).increment(0);
}

pub fn failed_login(reason: &'static str) {
    metrics::counter!(telemetry::metrics::FAILED_LOGINS_TOTAL, "reason" => reason).increment(1);
}

#[derive(Clone)]
pub struct LoginGuard {
    redis: RedisClient,
    keys: KeySpace,
    max_failures: i64,
    window_secs: i64,
    lockout_secs: i64,
    suspicious_accounts: i64,
}

fn degraded(what: &str, e: &fred::error::Error) {
    tracing::warn!(error = %e, check = what, "login protection unavailable (Redis); failing open");
}

/// The key an account's attempts and lock live under: its user id, or for a login that
/// names no account, a hash of the login (whatever was sent never becomes a key), so
/// unknown logins lock exactly like real ones and the answers never tell which accounts
/// exist.
pub fn account_key(user: Option<&Uuid>, login: &str) -> String {
    match user {
        Some(id) => id.to_string(),
        None => {
            let digest = Sha256::digest(login.trim().to_lowercase().as_bytes());
            let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
            format!("login:{hex}")
        }
    }
}

/// May this login attempt be checked?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Yes; it is counted (a success resets the count).
    Allowed,
    /// No: the account is locked.
    Locked,
    /// No: this attempt went over the limit and locked the account.
    LockedNow,
}

/// Checks the lock, counts the attempt and decides, in one atomic step, so parallel guesses
/// cannot all slip in between a check and a count. Answers 1 (allowed), 0 (locked) or
/// -1 (this attempt locked the account).
const RESERVE_ATTEMPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local attempts = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[2], 'NX')
if attempts > tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], 1, 'EX', ARGV[3])
  redis.call('DEL', KEYS[2])
  return -1
end
return 1
";

static RESERVE_SCRIPT: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::from_lua(RESERVE_ATTEMPT));

/// Un-counts one attempt, if any is still counted.
const GIVE_BACK_ATTEMPT: &str = r"
if redis.call('GET', KEYS[1]) and tonumber(redis.call('GET', KEYS[1])) > 0 then
  return redis.call('DECR', KEYS[1])
end
return 0
";

static GIVE_BACK_SCRIPT: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::from_lua(GIVE_BACK_ATTEMPT));

impl LoginGuard {
    pub fn new(redis: RedisClient, keys: KeySpace, auth: &AuthSettings) -> Self {
        Self {
            redis,
            keys,
            max_failures: i64::from(auth.max_failed_logins),
            window_secs: i64::try_from(auth.failed_login_window_secs).unwrap_or(i64::MAX),
            lockout_secs: i64::try_from(auth.lockout_secs).unwrap_or(i64::MAX),
            suspicious_accounts: i64::from(auth.suspicious_accounts_per_ip),
        }
    }

    /// Without a connection, fail open at once rather than wait out the command timeout on
    /// every login.
    fn available(&self, what: &str) -> bool {
        let up = self.redis.is_connected();
        if !up {
            tracing::warn!(
                check = what,
                "login protection unavailable (Redis not connected); failing open"
            );
        }
        up
    }

    /// How long a lock lasts, in seconds: the one retry delay every locked answer gives.
    pub fn lockout_secs(&self) -> u64 {
        u64::try_from(self.lockout_secs).unwrap_or(u64::MAX)
    }

    /// Reserves an attempt on `account` before its password is checked: `max_failed_logins`
    /// attempts without a success within the window are allowed, the next one locks.
    pub async fn reserve(&self, account: &str) -> Attempt {
        if !self.available("lock") {
            return Attempt::Allowed;
        }
        let keys = vec![
            self.keys.key_of("lock", account),
            self.keys.key_of("fails", account),
        ];
        let args = vec![
            self.max_failures.to_string(),
            self.window_secs.to_string(),
            self.lockout_secs.to_string(),
        ];
        match RESERVE_SCRIPT
            .evalsha_with_reload::<i64, _, _>(&self.redis, keys, args)
            .await
        {
            Ok(1) => Attempt::Allowed,
            Ok(-1) => Attempt::LockedNow,
            Ok(_) => Attempt::Locked,
            Err(e) => {
                degraded("lock", &e);
                Attempt::Allowed
            }
        }
    }

    /// Returns an attempt reserved for a password that was never checked (every hashing
    /// slot was busy): refusing for overload must not bring an account closer to its lock.
    pub async fn give_back(&self, account: &str) {
        if !self.available("failures") {
            return;
        }
        let _: Result<i64, _> = GIVE_BACK_SCRIPT
            .evalsha_with_reload(
                &self.redis,
                vec![self.keys.key_of("fails", account)],
                Vec::<String>::new(),
            )
            .await;
    }

    pub async fn record_success(&self, account: &str) {
        if !self.available("failures") {
            return;
        }
        let _: Result<i64, _> = self.redis.del(self.keys.key_of("fails", account)).await;
    }

    /// Counts a failed login from `client_ip` on `account`; `true` once per window, when the
    /// address has failed on `suspicious_accounts_per_ip` distinct accounts or more.
    pub async fn record_source_failure(&self, client_ip: &str, account: &str) -> bool {
        if client_ip.is_empty() || !self.available("sources") {
            return false;
        }
        let key = self.keys.key_of("source-fails", client_ip);
        let added: i64 = match self.redis.pfadd(&key, account.to_owned()).await {
            Ok(added) => added,
            Err(e) => {
                degraded("sources", &e);
                return false;
            }
        };
        let _: Result<bool, _> = self
            .redis
            .expire(&key, self.window_secs, Some(ExpireOptions::NX))
            .await;
        if added == 0 {
            return false;
        }
        let distinct: i64 = self.redis.pfcount(&key).await.unwrap_or(0);
        if distinct < self.suspicious_accounts {
            return false;
        }
        // Flag once per window however the count got past the threshold.
        let flagged = self.keys.key_of("source-flagged", client_ip);
        let first: Result<Option<String>, _> = self
            .redis
            .set(
                &flagged,
                1,
                Some(fred::types::Expiration::EX(self.window_secs)),
                Some(fred::types::SetOptions::NX),
                false,
            )
            .await;
        matches!(first, Ok(Some(_)))
    }
}
