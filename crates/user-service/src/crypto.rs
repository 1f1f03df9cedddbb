//! Password hashes (argon2id, OWASP parameters), refresh tokens (random, stored hashed) and
//! access tokens (HS256 JWT).
//!
//! Argon2id with m = 19 MiB, t = 2, p = 1: the first configuration OWASP's Password Storage
//! Cheat Sheet recommends. Every hash holds its 19 MiB while it runs, so hashing is bounded:
//! it runs on `auth.max_concurrent_hashes` dedicated threads (off the async workers, and
//! few enough that the memory they hold, including what the allocator keeps per thread,
//! stays within the pod's limit). A login that finds every thread busy waits up to
//! `auth.hash_queue_timeout_ms` and is then refused with [`HashError::Busy`].

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

fn argon2() -> Argon2<'static> {
    #[expect(clippy::expect_used, reason = "constant, valid parameters")]
    let params = Params::new(19_456, 2, 1, None).expect("OWASP argon2id parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every hashing thread stayed busy for the whole queue timeout.
    #[error("every password hashing slot is busy")]
    Busy,
    #[error("password hashing failed: {0}")]
    Failed(String),
}

type Job = Box<dyn FnOnce() + Send>;

/// The bounded password hasher. Cheap to clone; the threads stop when the last clone goes.
#[derive(Clone)]
pub struct Hasher {
    slots: Arc<Semaphore>,
    wait: Duration,
    jobs: mpsc::Sender<Job>,
}

impl Hasher {
    /// `threads` hashes at once; a caller waits at most `wait` for one of them.
    pub fn new(threads: usize, wait: Duration) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads {
            let queue = Arc::clone(&queue);
            let spawned = std::thread::Builder::new()
                .name(format!("password-hash-{i}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while taking a job, never while running it.
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        Self {
            slots: Arc::new(Semaphore::new(threads)),
            wait,
            jobs,
        }
    }

    async fn slot(&self) -> Result<OwnedSemaphorePermit, HashError> {
        match tokio::time::timeout(self.wait, Arc::clone(&self.slots).acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) | Err(_) => {
                metrics::counter!(telemetry::metrics::PASSWORD_HASHING_REJECTED_TOTAL).increment(1);
                Err(HashError::Busy)
            }
        }
    }

    /// Runs `work` on a hashing thread once a slot is free. The slot is released when the
    /// work ends, even if the caller has gone away meanwhile.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let permit = self.slot().await?;
        let (done, result) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _slot = permit;
                let _ = done.send(work());
            }))
            .map_err(|_| HashError::Failed("the hashing threads have stopped".into()))?;
        result
            .await
            .map_err(|_| HashError::Failed("a hashing thread stopped mid-hash".into()))
    }

    /// A PHC string: `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        self.run(move || {
            argon2()
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| HashError::Failed(e.to_string()))
        })
        .await?
    }

    /// Whether `password` matches `hash`. `None` (no account, or no password set) still
    /// spends the time of a real check, so timing does not tell whether an account exists.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, HashError> {
        self.run(move || {
            let argon2 = argon2();
            match hash.as_deref().map(PasswordHash::new) {
                Some(Ok(parsed)) => argon2.verify_password(password.as_bytes(), &parsed).is_ok(),
                Some(Err(_)) | None => {
                    let _ = argon2.hash_password(password.as_bytes());
                    false
                }
            }
        })
        .await
    }
}

/// A new refresh token (256 random bits) and the hash stored for it.
pub fn new_refresh_token() -> anyhow::Result<(String, Vec<u8>)> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = refresh_token_hash(&token);
    Ok((token, hash))
}

/// What the database keeps of a refresh token.
pub fn refresh_token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_with_owasp_parameters_and_verify() {
        let hasher = Hasher::new(2, Duration::from_secs(5));
        let hash = hasher
            .hash("correct horse battery staple".into())
            .await
            .expect("hash");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        let verify =
            |password: &str, hash: Option<String>| hasher.verify(password.to_owned(), hash);
        assert!(
            verify("correct horse battery staple", Some(hash.clone()))
                .await
                .expect("slot")
        );
        assert!(
            !verify("wrong horse battery staple", Some(hash))
                .await
                .expect("slot")
        );
        assert!(!verify("anything", None).await.expect("slot"));
    }

    #[tokio::test]
    async fn hashing_beyond_the_slots_waits_then_is_refused() {
        let hasher = Hasher::new(1, Duration::from_millis(1));
        let calls: Vec<_> = (0..4)
            .map(|i| {
                let hasher = hasher.clone();
                tokio::spawn(async move { hasher.hash(format!("password number {i}")).await })
            })
            .collect();
        let mut busy = 0;
        for call in calls {
            match call.await.expect("joined") {
                Ok(_) => {}
                Err(HashError::Busy) => busy += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(busy >= 1, "one slot, four hashes at once, 1 ms of patience");
    }

    #[test]
    fn refresh_tokens_are_random_and_stored_hashed() {
        let (a, hash_a) = new_refresh_token().expect("token");
        let (b, _) = new_refresh_token().expect("token");
        assert_ne!(a, b);
        assert_eq!(hash_a, refresh_token_hash(&a));
        assert_eq!(hash_a.len(), 32);
    }
}
