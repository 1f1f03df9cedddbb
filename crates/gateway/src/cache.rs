//! A short-lived cache of the answers to `GET /api/v1/videos/{id}`, the hottest read.
//!
//! Only answers anyone may see are kept (public and unlisted videos, with their counts),
//! as the JSON body sent, for `cache.video_ttl_ms`. So a hit costs no call to video-service,
//! engagement-service, Postgres or Redis, and is the same answer any caller would get.
//!
//! How fresh an answer is:
//! - A successful write through this replica that can change a video's answer (any non-GET
//!   request on `/api/v1/videos/{id}` and below but a view report: edit, delete, like,
//!   comment, complete) forgets that video after it ran; deleting a comment or an account
//!   forgets everything (the video is not in their path). A read that began before such a
//!   forget does not store what it read (its shard's epoch, bumped by every forget there,
//!   must be unchanged from its start).
//! - Anything else (another replica's write, the processing worker making a video `ready`,
//!   views flushed by engagement-service) shows once the entry expires: an answer is at most
//!   `video_ttl_ms` old.
//!
//! Refreshed ahead: the first read of an entry once its refresh is due (between half and
//! three quarters of its life, spread by id) is answered from it and also asks video-service
//! again in the background (one refresh per entry at a time), so that a video read often
//! enough never makes a reader wait for a miss. A
//! refreshed answer replaces the entry only under the same epoch rule; a refresh that finds
//! the video gone or private forgets it; any other failure leaves it to expire.
//!
//! Bounded: at `video_capacity` entries, expired ones are dropped; if it is still full, new
//! answers are not stored until some expire.

use std::collections::HashMap;
use std::sync::Mutex;
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

#[derive(Default)]
struct Shard {
    entries: HashMap<Uuid, Entry>,
    /// Bumped by every forget in this shard: a read that began under an older one does not
    /// store what it read.
    epoch: u64,
}

/// Shared by every worker (one per process).
pub struct VideoCache {
    ttl: Duration,
    per_shard: usize,
    shards: [Mutex<Shard>; SHARDS],
    hits: metrics::Counter,
    misses: metrics::Counter,
}

/// What a read that missed (or a refresh) must show to store its answer: the epoch of the
/// video's shard when it began, and when that was (the answer's age counts from there).
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    epoch: u64,
    began: Instant,
}

/// The longest `video_ttl_ms` accepted (a day: far beyond any sensible freshness).
pub const MAX_TTL_MS: u64 = 24 * 3600 * 1000;

impl VideoCache {
    pub fn new(settings: &CacheSettings) -> Self {
        let lookups = |result: &'static str| metrics::counter!(telemetry::metrics::GATEWAY_CACHE_LOOKUPS_TOTAL, "cache" => "videos", "result" => result);
        Self {
            // `Settings::load_from` refuses more; the bound keeps `Instant + ttl` in range.
            ttl: Duration::from_millis(settings.video_ttl_ms.min(MAX_TTL_MS)),
            per_shard: settings.video_capacity.div_ceil(SHARDS),
            shards: std::array::from_fn(|_| Mutex::new(Shard::default())),
            hits: lookups("hit"),
            misses: lookups("miss"),
        }
    }

    fn enabled(&self) -> bool {
        !self.ttl.is_zero() && self.per_shard > 0
    }

    fn shard(&self, id: &Uuid) -> std::sync::MutexGuard<'_, Shard> {
        // A v4 id's last byte is random; a v7 one's too.
        let i = usize::from(id.as_bytes()[15]) % SHARDS;
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The stored answer for `id` (with a ticket when this caller is to refresh it in the
    /// background), or a ticket to store one.
    pub fn get(&self, id: &Uuid) -> Result<(Bytes, Option<Ticket>), Ticket> {
        let now = Instant::now();
        if !self.enabled() {
            return Err(Ticket {
                epoch: u64::MAX,
                began: now,
            });
        }
        let mut shard = self.shard(id);
        let ticket = Ticket {
            epoch: shard.epoch,
            began: now,
        };
        let found = shard
            .entries
            .get_mut(id)
            .filter(|e| e.expires > now)
            .map(|e| {
                let refresh = now >= e.refresh_at && !e.refreshing;
                e.refreshing |= refresh;
                (e.body.clone(), refresh.then_some(ticket))
            });
        drop(shard);
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

    /// Stores `body` for `id` unless its shard forgot something since `ticket` was taken,
    /// to expire `video_ttl_ms` after the ticket (when the read began).
    pub fn put(&self, ticket: Ticket, id: Uuid, body: Bytes) {
        if !self.enabled() {
            return;
        }
        let now = Instant::now();
        let expires = ticket.began + self.ttl;
        if expires <= now {
            return;
        }
        let mut shard = self.shard(&id);
        if shard.epoch != ticket.epoch {
            return;
        }
        if shard.entries.len() >= self.per_shard && !shard.entries.contains_key(&id) {
            shard.entries.retain(|_, e| e.expires > now);
            if shard.entries.len() >= self.per_shard {
                return;
            }
        }
        shard.entries.insert(
            id,
            Entry {
                body,
                refresh_at: ticket.began + refresh_after(self.ttl, &id),
                expires,
                refreshing: false,
            },
        );
    }

    /// Drops `id`'s answer, and makes reads of its shard in progress not store theirs.
    pub fn forget(&self, id: &Uuid) {
        let mut shard = self.shard(id);
        shard.epoch += 1;
        shard.entries.remove(id);
    }

    /// Drops every answer.
    pub fn clear(&self) {
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            shard.epoch += 1;
            shard.entries.clear();
        }
    }
}

/// When an entry's refresh is due: between half and three quarters of its life, spread by
/// its id, so that answers stored together (a cold start, a clear) are not all refreshed
/// in one wave of calls to video-service each cycle.
fn refresh_after(ttl: Duration, id: &Uuid) -> Duration {
    let spread = u32::from(id.as_bytes()[14]); // 0..=255
    ttl / 2 + ttl * spread / 1024
}

/// What a request may have changed of the cached answers.
enum Touches {
    Nothing,
    /// The video whose id routing found in the path.
    Video,
    Anything,
}

fn touches(req: &ServiceRequest) -> Touches {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Touches::Nothing;
    }
    let Some(route) = req.match_pattern() else {
        return Touches::Nothing;
    };
    match route.as_str() {
        // A view changes no cached field at once (views are counted when engagement-service
        // flushes them; the entry is fresh again within `video_ttl_ms` anyway).
        "/api/v1/videos/{id}/views" => Touches::Nothing,
        r if r.starts_with("/api/v1/videos/{id}") => Touches::Video,
        // A comment's video, or an account's videos, are not in the path.
        "/api/v1/comments/{id}" | "/api/v1/me" if *req.method() == Method::DELETE => {
            Touches::Anything
        }
        _ => Touches::Nothing,
    }
}

/// The middleware: after a successful request that may have changed a cached answer,
/// forgets it. The id is the one routing decoded (the handler's), read from the answered
/// request: `/videos/%7B<uuid>%7D` is that video too.
pub async fn invalidate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let touched = touches(&req);
    let response = next.call(req).await?;
    if matches!(touched, Touches::Nothing) || !response.status().is_success() {
        return Ok(response);
    }
    if let Some(cache) = response.request().app_data::<web::Data<VideoCache>>() {
        match touched {
            Touches::Video => {
                let id = response
                    .request()
                    .match_info()
                    .get("id")
                    .map(Uuid::parse_str);
                if let Some(Ok(id)) = id {
                    cache.forget(&id);
                }
            }
            Touches::Anything => cache.clear(),
            Touches::Nothing => {}
        }
    }
    Ok(response)
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

    /// An id in shard `shard` (its last byte picks the shard).
    fn id_in(shard: u8) -> Uuid {
        let mut bytes = *Uuid::new_v4().as_bytes();
        bytes[15] = shard;
        Uuid::from_bytes(bytes)
    }

    #[test]
    fn a_read_that_began_before_a_forget_in_its_shard_does_not_store_what_it_read() {
        let c = cache(60_000, 100);
        let (id, neighbour, elsewhere) = (id_in(3), id_in(3), id_in(4));
        let ticket = c.get(&id).expect_err("empty");
        c.forget(&neighbour);
        c.put(ticket, id, Bytes::from_static(b"old"));
        assert!(c.get(&id).is_err(), "the stale read was not stored");

        let ticket = c.get(&id).expect_err("empty");
        c.forget(&elsewhere);
        c.put(ticket, id, Bytes::from_static(b"new"));
        assert_eq!(
            c.get(&id)
                .expect("a forget in another shard does not matter")
                .0,
            Bytes::from_static(b"new")
        );
        c.forget(&id);
        assert!(c.get(&id).is_err(), "forgotten");

        let ticket = c.get(&elsewhere).expect_err("empty");
        c.put(ticket, elsewhere, Bytes::from_static(b"x"));
        let ticket = c.get(&id).expect_err("empty");
        c.clear();
        assert!(c.get(&elsewhere).is_err(), "cleared");
        c.put(ticket, id, Bytes::from_static(b"y"));
        assert!(c.get(&id).is_err(), "a clear stops every read in progress");
    }

    #[test]
    fn an_answer_ages_from_when_its_read_began() {
        let c = cache(50, 100);
        let id = Uuid::new_v4();
        let ticket = c.get(&id).expect_err("empty");
        std::thread::sleep(Duration::from_millis(60));
        c.put(ticket, id, Bytes::from_static(b"slow"));
        assert!(
            c.get(&id).is_err(),
            "read longer ago than the TTL: not stored"
        );
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
    fn refreshes_are_spread_between_half_and_three_quarters_of_the_ttl() {
        let ttl = Duration::from_millis(1000);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let after = refresh_after(ttl, &Uuid::new_v4());
            assert!(after >= ttl / 2 && after < ttl * 3 / 4, "{after:?}");
            seen.insert(after.as_millis());
        }
        assert!(seen.len() > 50, "spread: {} distinct", seen.len());
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
        let held: usize = c
            .shards
            .iter()
            .map(|s| s.lock().expect("lock").entries.len())
            .sum();
        assert_eq!(held, stored);
        assert!(held <= SHARDS, "{held} entries for a capacity of {SHARDS}");

        let off = cache(0, 100);
        let id = Uuid::new_v4();
        let ticket = off.get(&id).expect_err("off");
        off.put(ticket, id, Bytes::from_static(b"{}"));
        assert!(off.get(&id).is_err(), "nothing is stored with a TTL of 0");
    }
}
