//! A short-lived cache of the answers to `GET /api/v1/videos/{id}`, the hottest read.
//!
//! Only answers anyone may see are kept (public and unlisted videos, with their counts),
//! as the JSON body sent, for `cache.video_ttl_ms`. So a hit costs no call to video-service,
//! engagement-service, Postgres or Redis, and is the same answer any caller would get.
//!
//! How fresh an answer is:
//! - A write through this replica that can change a video's answer (any non-GET request on
//!   `/api/v1/videos/{id}` and below: edit, delete, like, view, comment, complete) forgets
//!   that video after it ran; deleting a comment or an account forgets everything (the video
//!   is not in their path). A read that began before such a write does not store what it
//!   read (an epoch, bumped by every forget, must be unchanged from its start).
//! - Anything else (another replica's write, the processing worker making a video `ready`,
//!   views flushed by engagement-service) shows once the entry expires: an answer is at most
//!   `video_ttl_ms` old.
//!
//! Refreshed ahead: the first read of an entry in the last quarter of its life is answered
//! from it and also asks video-service again in the background (one refresh per entry at a
//! time), so that a video read often enough never makes a reader wait for a miss. A
//! refreshed answer replaces the entry only under the same epoch rule; a refresh that finds
//! the video gone or private forgets it; any other failure leaves it to expire.
//!
//! Bounded: at `video_capacity` entries, expired ones are dropped; if it is still full, new
//! answers are not stored until some expire.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes};
use serde::Deserialize;
use uuid::Uuid;

/// `[cache]` in the gateway's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSettings {
    /// How long an answer to `GET /api/v1/videos/{id}` is served from memory, in
    /// milliseconds; 0 turns the cache off.
    pub video_ttl_ms: u64,
    /// Most answers kept at once.
    pub video_capacity: usize,
}

const SHARDS: usize = 16;

struct Entry {
    body: Bytes,
    /// From here on, the next hit refreshes it in the background.
    refresh_at: Instant,
    expires: Instant,
    refreshing: bool,
}

/// Shared by every worker (one per process).
pub struct VideoCache {
    ttl: Duration,
    per_shard: usize,
    shards: [Mutex<HashMap<Uuid, Entry>>; SHARDS],
    epoch: AtomicU64,
    hits: metrics::Counter,
    misses: metrics::Counter,
}

/// What a read that missed must show to store its answer: the epoch it began in.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

impl VideoCache {
    pub fn new(settings: &CacheSettings) -> Self {
        let lookups = |result: &'static str| metrics::counter!(telemetry::metrics::GATEWAY_CACHE_LOOKUPS_TOTAL, "cache" => "videos", "result" => result);
        Self {
            ttl: Duration::from_millis(settings.video_ttl_ms),
            per_shard: settings.video_capacity.div_ceil(SHARDS),
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            epoch: AtomicU64::new(0),
            hits: lookups("hit"),
            misses: lookups("miss"),
        }
    }

    fn enabled(&self) -> bool {
        !self.ttl.is_zero() && self.per_shard > 0
    }

    fn shard(&self, id: &Uuid) -> std::sync::MutexGuard<'_, HashMap<Uuid, Entry>> {
        // A v4 id's last byte is random; a v7 one's too.
        let i = usize::from(id.as_bytes()[15]) % SHARDS;
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The stored answer for `id` (with a ticket when this caller is to refresh it in the
    /// background), or a ticket to store one.
    pub fn get(&self, id: &Uuid) -> Result<(Bytes, Option<Ticket>), Ticket> {
        if !self.enabled() {
            return Err(Ticket(u64::MAX));
        }
        // Read before the lookup: a forget between the two makes the ticket stale, never
        // the other way round.
        let ticket = Ticket(self.epoch.load(Ordering::Acquire));
        let now = Instant::now();
        let found = self
            .shard(id)
            .get_mut(id)
            .filter(|e| e.expires > now)
            .map(|e| {
                let refresh = now >= e.refresh_at && !e.refreshing;
                e.refreshing |= refresh;
                (e.body.clone(), refresh.then_some(ticket))
            });
        match found {
            Some(hit) => {
                self.hits.increment(1);
                Ok(hit)
            }
            None => {
                self.misses.increment(1);
                Err(ticket)
            }
        }
    }

    /// Stores `body` for `id` unless something was forgotten since `ticket` was taken.
    pub fn put(&self, ticket: Ticket, id: Uuid, body: Bytes) {
        if !self.enabled() || self.epoch.load(Ordering::Acquire) != ticket.0 {
            return;
        }
        let now = Instant::now();
        let mut shard = self.shard(&id);
        if shard.len() >= self.per_shard && !shard.contains_key(&id) {
            shard.retain(|_, e| e.expires > now);
            if shard.len() >= self.per_shard {
                return;
            }
        }
        // Checked again under the lock: a forget that ran in between has removed nothing
        // of ours yet, and must win.
        if self.epoch.load(Ordering::Acquire) != ticket.0 {
            return;
        }
        shard.insert(
            id,
            Entry {
                body,
                refresh_at: now + self.ttl * 3 / 4,
                expires: now + self.ttl,
                refreshing: false,
            },
        );
    }

    /// Drops `id`'s answer, and makes reads in progress not store theirs.
    pub fn forget(&self, id: &Uuid) {
        let mut shard = self.shard(id);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        shard.remove(id);
    }

    /// Drops every answer.
    pub fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for shard in &self.shards {
            shard.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }
}

/// What a request may have changed of the cached answers.
enum Touches {
    Nothing,
    Video(Uuid),
    Anything,
}

fn touches(req: &ServiceRequest) -> Touches {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Touches::Nothing;
    }
    let Some(route) = req.match_pattern() else {
        return Touches::Nothing;
    };
    if route.starts_with("/api/v1/videos/{id}") {
        // The path is canonical by now (`canonical`), and routing has not filled
        // `match_info` yet: the id is the segment after `/videos/`.
        let id = req
            .path()
            .strip_prefix("/api/v1/videos/")
            .and_then(|rest| rest.split('/').next())
            .map(Uuid::parse_str);
        match id {
            Some(Ok(id)) => Touches::Video(id),
            _ => Touches::Nothing,
        }
    } else if route == "/api/v1/comments/{id}" || route == "/api/v1/me" {
        // A comment's video, or an account's videos, are not in the path.
        if *req.method() == Method::DELETE {
            Touches::Anything
        } else {
            Touches::Nothing
        }
    } else {
        Touches::Nothing
    }
}

/// The middleware: after a request that may have changed a cached answer, forgets it.
pub async fn invalidate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let touched = touches(&req);
    let cache = match touched {
        Touches::Nothing => None,
        _ => req.app_data::<web::Data<VideoCache>>().cloned(),
    };
    let response = next.call(req).await;
    if let Some(cache) = cache {
        match touched {
            Touches::Video(id) => cache.forget(&id),
            Touches::Anything => cache.clear(),
            Touches::Nothing => {}
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(ttl_ms: u64, capacity: usize) -> VideoCache {
        VideoCache::new(&CacheSettings {
            video_ttl_ms: ttl_ms,
            video_capacity: capacity,
        })
    }

    #[test]
    fn an_answer_is_served_until_it_expires() {
        let c = cache(50, 100);
        let id = Uuid::new_v4();
        let ticket = c.get(&id).expect_err("empty");
        c.put(ticket, id, Bytes::from_static(b"{}"));
        assert_eq!(c.get(&id).expect("stored").0, Bytes::from_static(b"{}"));
        std::thread::sleep(Duration::from_millis(60));
        assert!(c.get(&id).is_err(), "expired");
    }

    #[test]
    fn a_read_that_began_before_a_forget_does_not_store_what_it_read() {
        let c = cache(60_000, 100);
        let (id, other) = (Uuid::new_v4(), Uuid::new_v4());
        let ticket = c.get(&id).expect_err("empty");
        c.forget(&other);
        c.put(ticket, id, Bytes::from_static(b"old"));
        assert!(c.get(&id).is_err(), "the stale read was not stored");
        let ticket = c.get(&id).expect_err("empty");
        c.put(ticket, id, Bytes::from_static(b"new"));
        assert_eq!(c.get(&id).expect("stored").0, Bytes::from_static(b"new"));
        c.forget(&id);
        assert!(c.get(&id).is_err(), "forgotten");
        let ticket = c.get(&other).expect_err("empty");
        c.put(ticket, other, Bytes::from_static(b"x"));
        c.clear();
        assert!(c.get(&other).is_err(), "cleared");
    }

    #[test]
    fn the_first_hit_in_the_last_quarter_refreshes_and_the_refresh_renews_the_entry() {
        let c = cache(200, 100);
        let id = Uuid::new_v4();
        let ticket = c.get(&id).expect_err("empty");
        c.put(ticket, id, Bytes::from_static(b"old"));
        assert!(
            c.get(&id).expect("fresh").1.is_none(),
            "no refresh while young"
        );
        std::thread::sleep(Duration::from_millis(160));
        let (body, refresh) = c.get(&id).expect("still served");
        assert_eq!(body, Bytes::from_static(b"old"));
        let refresh = refresh.expect("the first late hit refreshes");
        assert!(
            c.get(&id).expect("served").1.is_none(),
            "one refresh at a time"
        );
        c.put(refresh, id, Bytes::from_static(b"new"));
        std::thread::sleep(Duration::from_millis(60));
        let (body, refresh) = c.get(&id).expect("renewed: alive past the old expiry");
        assert_eq!(body, Bytes::from_static(b"new"));
        assert!(refresh.is_none());
    }

    #[test]
    fn it_stays_within_its_capacity_and_can_be_off() {
        let c = cache(60_000, SHARDS);
        let mut stored = 0;
        for _ in 0..10 * SHARDS {
            let id = Uuid::new_v4();
            let ticket = c.get(&id).expect_err("new");
            c.put(ticket, id, Bytes::from_static(b"{}"));
            stored += usize::from(c.get(&id).is_ok());
        }
        let held: usize = c.shards.iter().map(|s| s.lock().expect("lock").len()).sum();
        assert_eq!(held, stored);
        assert!(held <= SHARDS, "{held} entries for a capacity of {SHARDS}");

        let off = cache(0, 100);
        let id = Uuid::new_v4();
        let ticket = off.get(&id).expect_err("off");
        off.put(ticket, id, Bytes::from_static(b"{}"));
        assert!(off.get(&id).is_err(), "nothing is stored with a TTL of 0");
    }
}
