//! The Redis side of engagement: who has been counted as a viewer of what (for the
//! window), the buffer of counted views waiting to be added in Postgres, and the hourly
//! trending buckets. Every multi-step change is one Lua script, so it is atomic.
//!
//! Keys (under the service prefix `eng:`):
//! - `seen:<video>:<viewer hash>`: a counted viewer, for `views.window_secs`;
//! - `addr:<video>:<address hash>`: anonymous viewers counted from one address;
//! - `pending`: the buffer, a hash of `v:<video>` (views), `w:<video>` (watch seconds),
//!   `d:<video>` (the video's length);
//! - `batch:<uuid>` and the set `batches`: buffers taken for flushing, until Postgres has
//!   them;
//! - `trend:<hour>`: a sorted set of videos by the hour's views and weighted likes;
//!   `trend:current` the merged ranking, cached for `trending.cache_secs`.

use std::collections::HashMap;

use fred::interfaces::{HashesInterface, KeysInterface, SetsInterface, SortedSetsInterface};
use fred::types::scripts::Script;
use platform::redis::{KeySpace, RedisClient};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::TrendingSettings;
use crate::domain::{Viewer, hour_weight};
use crate::error::EngagementError;

/// Counts a view unless the viewer was counted in the window, or the address has had its
/// share of anonymous viewers. 1: counted; 0: duplicate; 2: address limit.
const RECORD_VIEW: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if ARGV[7] == '1' then
  local n = redis.call('INCR', KEYS[2])
  if n == 1 then redis.call('EXPIRE', KEYS[2], ARGV[1]) end
  if n > tonumber(ARGV[2]) then return 2 end
end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
redis.call('HINCRBY', KEYS[3], 'v:' .. ARGV[3], 1)
redis.call('HINCRBYFLOAT', KEYS[3], 'w:' .. ARGV[3], ARGV[4])
redis.call('HSET', KEYS[3], 'd:' .. ARGV[3], ARGV[5])
redis.call('ZINCRBY', KEYS[4], 1, ARGV[3])
redis.call('EXPIRE', KEYS[4], ARGV[6])
return 1
";

/// Moves the buffer aside under a batch id, listed in `batches` until flushed.
const TAKE_BATCH: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('SADD', KEYS[3], ARGV[1])
return 1
";

/// The merged trending ranking: cached, or rebuilt from the hourly buckets. Returns
/// {hit, {member, score, ...}}.
const TRENDING: &str = r"
local hit = 1
if redis.call('EXISTS', KEYS[1]) == 0 then
  hit = 0
  local args = {'ZUNIONSTORE', KEYS[1], #KEYS - 1}
  for i = 2, #KEYS do table.insert(args, KEYS[i]) end
  table.insert(args, 'WEIGHTS')
  for i = 3, #ARGV do table.insert(args, ARGV[i]) end
  redis.call(unpack(args))
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return {hit, redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1, 'WITHSCORES')}
";

static RECORD_VIEW_SCRIPT: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::from_lua(RECORD_VIEW));
static TAKE_BATCH_SCRIPT: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::from_lua(TAKE_BATCH));
static TRENDING_SCRIPT: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::from_lua(TRENDING));

/// A feed page more than this long after the previous one starts a new browsing session.
const BROWSE_GAP_SECS: i64 = 1800;

/// What became of a reported view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewOutcome {
    Counted,
    /// This viewer was counted for this video in the window already.
    Duplicate,
    /// The address has had its share of anonymous viewers of this video in the window.
    AddressLimit,
}

/// A buffer of views taken for flushing: per video, (views, watch seconds, length).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    pub id: Uuid,
    pub videos: HashMap<Uuid, (i64, f64, i32)>,
}

fn redis_error(e: fred::error::Error) -> EngagementError {
    EngagementError::Counters(e.to_string())
}

#[derive(Clone)]
pub struct Counters {
    redis: RedisClient,
    keys: KeySpace,
    /// Keys the viewer hashes, so a stored key reveals no address or user.
    secret: std::sync::Arc<[u8]>,
    window_secs: u64,
    max_anonymous_per_address: u32,
    trending: TrendingSettings,
}

impl Counters {
    pub fn new(
        redis: RedisClient,
        keys: KeySpace,
        secret: &[u8],
        window_secs: u64,
        max_anonymous_per_address: u32,
        trending: TrendingSettings,
    ) -> Self {
        Self {
            redis,
            keys,
            secret: secret.into(),
            window_secs: window_secs.max(1),
            max_anonymous_per_address,
            trending,
        }
    }

    fn hash(&self, video: Uuid, what: &str) -> String {
        let mut hasher = Sha256::new();
        hasher.update(&self.secret);
        hasher.update([0]);
        hasher.update(video.as_bytes());
        hasher.update(what.as_bytes());
        let digest = hasher.finalize();
        digest[..16].iter().map(|b| format!("{b:02x}")).collect()
    }

    fn hour_now() -> i64 {
        chrono::Utc::now().timestamp() / 3600
    }

    fn bucket(&self, hour: i64) -> String {
        self.keys.key_of("trend", hour)
    }

    fn bucket_ttl(&self) -> u64 {
        (u64::from(self.trending.window_hours) + 1) * 3600
    }

    /// Counts a view of `video` by `viewer` (who watched long enough) unless already
    /// counted in the window; buffers it for Postgres and adds it to trending.
    pub async fn record_view(
        &self,
        video: Uuid,
        viewer: &Viewer,
        watch_seconds: f64,
        duration_seconds: u32,
    ) -> Result<ViewOutcome, EngagementError> {
        let (who, address) = match viewer {
            Viewer::User(id) => (format!("user:{id}"), None),
            Viewer::Cookie { id, address } => (format!("cookie:{id}"), Some(address.as_str())),
            Viewer::Address(address) => (format!("address:{address}"), None),
        };
        let seen = self
            .keys
            .key_of("seen", format_args!("{video}:{}", self.hash(video, &who)));
        let addr = match address {
            Some(a) => self
                .keys
                .key_of("addr", format_args!("{video}:{}", self.hash(video, a))),
            None => self.keys.key("addr:none"),
        };
        let keys = vec![
            seen,
            addr,
            self.keys.key("pending"),
            self.bucket(Self::hour_now()),
        ];
        let args = vec![
            self.window_secs.to_string(),
            self.max_anonymous_per_address.to_string(),
            video.to_string(),
            watch_seconds.to_string(),
            duration_seconds.to_string(),
            self.bucket_ttl().to_string(),
            if address.is_some() { "1" } else { "0" }.to_owned(),
        ];
        let outcome: i64 = RECORD_VIEW_SCRIPT
            .evalsha_with_reload(&self.redis, keys, args)
            .await
            .map_err(redis_error)?;
        Ok(match outcome {
            1 => ViewOutcome::Counted,
            2 => ViewOutcome::AddressLimit,
            _ => ViewOutcome::Duplicate,
        })
    }

    /// Adds `delta` likes of `video` to the current trending bucket.
    pub async fn trend_like(&self, video: Uuid, delta: f64) -> Result<(), EngagementError> {
        let key = self.bucket(Self::hour_now());
        let _: f64 = self
            .redis
            .zincrby(&key, delta * self.trending.like_weight, video.to_string())
            .await
            .map_err(redis_error)?;
        let _: bool = self
            .redis
            .expire(
                &key,
                i64::try_from(self.bucket_ttl()).unwrap_or(i64::MAX),
                None,
            )
            .await
            .map_err(redis_error)?;
        Ok(())
    }

    /// The top `limit` of the trending ranking, best first, and whether it came from the
    /// cache.
    pub async fn trending(
        &self,
        limit: usize,
    ) -> Result<(Vec<(Uuid, f64)>, bool), EngagementError> {
        let now = Self::hour_now();
        let hours = self.trending.window_hours.max(1);
        let mut keys = Vec::with_capacity(hours as usize + 1);
        keys.push(self.keys.key("trend:current"));
        let mut args = vec![
            self.trending.cache_secs.max(1).to_string(),
            limit.to_string(),
        ];
        for age in 0..hours {
            keys.push(self.bucket(now - i64::from(age)));
            args.push(hour_weight(age, self.trending.half_life_secs).to_string());
        }
        let (hit, ranked): (i64, Vec<String>) = TRENDING_SCRIPT
            .evalsha_with_reload(&self.redis, keys, args)
            .await
            .map_err(redis_error)?;
        let mut out = Vec::with_capacity(ranked.len() / 2);
        for pair in ranked.chunks_exact(2) {
            if let (Ok(id), Ok(score)) = (Uuid::parse_str(&pair[0]), pair[1].parse::<f64>())
                && score > 0.0
            {
                out.push((id, score));
            }
        }
        Ok((out, hit == 1))
    }

    /// Takes the current buffer for flushing (if anything is buffered) and returns every
    /// batch waiting for Postgres, the new one and any a crash left behind.
    pub async fn take_batches(&self) -> Result<Vec<Batch>, EngagementError> {
        let id = Uuid::new_v4();
        let batches_key = self.keys.key("batches");
        let _: i64 = TAKE_BATCH_SCRIPT
            .evalsha_with_reload(
                &self.redis,
                vec![
                    self.keys.key("pending"),
                    self.keys.key_of("batch", id),
                    batches_key.clone(),
                ],
                vec![id.to_string()],
            )
            .await
            .map_err(redis_error)?;
        let ids: Vec<String> = self
            .redis
            .smembers(&batches_key)
            .await
            .map_err(redis_error)?;
        let mut batches = Vec::with_capacity(ids.len());
        for raw in ids {
            let Ok(id) = Uuid::parse_str(&raw) else {
                let _: i64 = self
                    .redis
                    .srem(&batches_key, raw)
                    .await
                    .map_err(redis_error)?;
                continue;
            };
            let fields: HashMap<String, String> = self
                .redis
                .hgetall(self.keys.key_of("batch", id))
                .await
                .map_err(redis_error)?;
            batches.push(Batch {
                id,
                videos: parse_batch(&fields),
            });
        }
        Ok(batches)
    }

    /// Notes that `user` is browsing their feed now; the seconds since the previous page
    /// when that was less than half an hour ago.
    pub async fn browse_tick(&self, user: Uuid) -> Result<Option<f64>, EngagementError> {
        let now = chrono::Utc::now().timestamp_millis();
        let previous: Option<i64> = self
            .redis
            .set(
                self.keys.key_of("browse", user),
                now,
                Some(fred::types::Expiration::EX(BROWSE_GAP_SECS)),
                None,
                true,
            )
            .await
            .map_err(redis_error)?;
        Ok(previous
            .map(|p| (now - p) as f64 / 1000.0)
            .filter(|s| (0.0..BROWSE_GAP_SECS as f64).contains(s)))
    }

    /// Forgets a batch Postgres has.
    pub async fn finish_batch(&self, id: Uuid) -> Result<(), EngagementError> {
        let _: i64 = self
            .redis
            .del(self.keys.key_of("batch", id))
            .await
            .map_err(redis_error)?;
        let _: i64 = self
            .redis
            .srem(self.keys.key("batches"), id.to_string())
            .await
            .map_err(redis_error)?;
        Ok(())
    }

    /// Drops a deleted video from the current trending bucket and the cached ranking (older
    /// buckets expire; readers filter what video-service no longer has).
    pub async fn forget_video(&self, video: Uuid) -> Result<(), EngagementError> {
        for key in [
            self.bucket(Self::hour_now()),
            self.keys.key("trend:current"),
        ] {
            let _: i64 = self
                .redis
                .zrem(key, video.to_string())
                .await
                .map_err(redis_error)?;
        }
        Ok(())
    }
}

/// `v:<id>`, `w:<id>`, `d:<id>` fields into per-video sums; anything else is skipped.
fn parse_batch(fields: &HashMap<String, String>) -> HashMap<Uuid, (i64, f64, i32)> {
    let mut videos: HashMap<Uuid, (i64, f64, i32)> = HashMap::new();
    for (field, value) in fields {
        let Some((kind, id)) = field.split_once(':') else {
            continue;
        };
        let Ok(id) = Uuid::parse_str(id) else {
            continue;
        };
        let entry = videos.entry(id).or_default();
        match kind {
            "v" => entry.0 = value.parse().unwrap_or(0),
            "w" => entry.1 = value.parse().unwrap_or(0.0),
            "d" => entry.2 = value.parse().unwrap_or(0),
            _ => {}
        }
    }
    videos.retain(|_, (views, _, _)| *views > 0);
    videos
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_sums_per_video_and_skips_junk() {
        let id = Uuid::new_v4();
        let fields: HashMap<String, String> = [
            (format!("v:{id}"), "3".to_owned()),
            (format!("w:{id}"), "12.5".to_owned()),
            (format!("d:{id}"), "60".to_owned()),
            ("v:not-a-uuid".to_owned(), "9".to_owned()),
            ("junk".to_owned(), "1".to_owned()),
        ]
        .into_iter()
        .collect();
        let batch = parse_batch(&fields);
        assert_eq!(batch.len(), 1);
        assert_eq!(batch.get(&id), Some(&(3, 12.5, 60)));
    }
}
