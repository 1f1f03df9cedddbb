//! What the gateway does before any route runs: who is calling (access token verified here,
//! no call per request), and whether they may (rate limits in Redis). Also counts active
//! users for the DAU/MAU gauges.

use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::AUTHORIZATION;
use actix_web::middleware::Next;
use actix_web::{Error, FromRequest, HttpMessage, HttpRequest, ResponseError, web};
use chrono::Utc;
use fred::prelude::{ClientLike, HyperloglogInterface, KeysInterface};
use fred::types::scripts::Script;
use platform::config::AuthSettings;
use platform::jwt;
use platform::redis::{KeySpace, RedisClient};
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::config::{Rate, RateLimitSettings};
use crate::error::ApiError;

/// Shared by every worker.
pub struct Edge {
    jwt_secret: Vec<u8>,
    redis: RedisClient,
    keys: KeySpace,
    limits: RateLimitSettings,
    trusted_proxy_hops: usize,
    /// The rate limiter while Redis is unreachable: the same rates, kept in this process
    /// (so N replicas allow up to N times the rate, not an unlimited one).
    local: LocalLimiter,
    /// Requests taken from Redis ahead of time for busy callers.
    leases: Leases,
}

/// GCRA in process memory, keyed like the Redis one. Bounded: past `MAX_KEYS` keys, the
/// ones whose allowance is whole again are forgotten (forgetting them changes nothing).
#[derive(Debug, Default)]
pub struct LocalLimiter {
    tats: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

impl LocalLimiter {
    const MAX_KEYS: usize = 100_000;

    fn check(&self, key: String, rate: Rate) -> Verdict {
        let now = std::time::Instant::now();
        let interval = Duration::from_millis((60_000 / u64::from(rate.per_minute.max(1))).max(1));
        let mut tats = self.tats.lock().unwrap_or_else(|e| e.into_inner());
        if tats.len() >= Self::MAX_KEYS {
            tats.retain(|_, tat| *tat > now);
            // Still full (a flood of distinct keys): start over rather than scan again on
            // every request. Forgetting allowances lets a few more requests through, once.
            if tats.len() >= Self::MAX_KEYS / 2 {
                tats.clear();
            }
        }
        let tat = tats.get(&key).copied().filter(|t| *t > now).unwrap_or(now);
        let new_tat = tat + interval;
        let allowed_at = new_tat.checked_sub(interval * rate.burst).unwrap_or(now);
        if allowed_at > now {
            let wait = allowed_at - now;
            return Verdict::Limited {
                retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            };
        }
        tats.insert(key, new_tat);
        Verdict::Allowed
    }
}

impl Edge {
    pub fn new(
        auth: &AuthSettings,
        redis: RedisClient,
        keys: KeySpace,
        limits: RateLimitSettings,
        trusted_proxy_hops: usize,
    ) -> Self {
        Self {
            jwt_secret: auth.jwt_secret.expose_secret().as_bytes().to_vec(),
            redis,
            keys,
            limits,
            trusted_proxy_hops,
            local: LocalLimiter::default(),
            leases: Leases::default(),
        }
    }
}

/// The outcome of looking at the `Authorization` header, kept in the request's extensions.
#[derive(Debug, Clone)]
enum Caller {
    Anonymous,
    /// A signed-in user, and whether their token carries the admin role.
    User(Uuid, bool),
    /// A token was sent but is not valid; why, in words for the client.
    Rejected(&'static str),
}

fn caller(edge: &Edge, req: &ServiceRequest) -> Caller {
    let Some(header) = req.headers().get(AUTHORIZATION) else {
        return Caller::Anonymous;
    };
    let Some(token) = header.to_str().ok().and_then(|h| h.strip_prefix("Bearer ")) else {
        return Caller::Rejected("the Authorization header must be `Bearer <access token>`");
    };
    match jwt::verify::<jwt::Claims>(&edge.jwt_secret, token.trim(), Utc::now().timestamp()) {
        Ok(claims) => match Uuid::parse_str(&claims.sub) {
            Ok(id) => Caller::User(id, claims.role.as_deref() == Some("admin")),
            Err(_) => Caller::Rejected("the access token is invalid"),
        },
        Err(jwt::JwtError::Expired) => Caller::Rejected("the access token has expired"),
        Err(_) => Caller::Rejected("the access token is invalid"),
    }
}

/// The client's address: the connection's peer, or with `hops` trusted proxies in front,
/// the address the outermost of them saw (the `hops`-th entry from the right of
/// `X-Forwarded-For`; entries further left are whatever the client claimed).
pub fn client_address(req: &HttpRequest, hops: usize) -> String {
    let peer = || {
        req.peer_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default()
    };
    if hops == 0 {
        return peer();
    }
    let forwarded: Vec<String> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|a| a.trim().to_owned())
        .filter(|a| a.parse::<std::net::IpAddr>().is_ok())
        .collect();
    forwarded
        .len()
        .checked_sub(hops)
        .and_then(|i| forwarded.get(i).cloned())
        .unwrap_or_else(peer)
}

/// The client's address for this request, as [`client_address`] with the configured hops.
pub fn client_ip(req: &HttpRequest) -> String {
    let hops = req
        .app_data::<web::Data<Edge>>()
        .map_or(0, |edge| edge.trusted_proxy_hops);
    client_address(req, hops)
}

/// GCRA in one atomic round trip: the key holds the theoretical arrival time (ms). Takes up
/// to ARGV[3] requests' worth at once (a lease, see [`Leases`]): answers {n, 0} when n were
/// taken (at least 1), {0, ms to wait} when none is free. With ARGV[3] = 1 this is the plain
/// one-request GCRA. Time is Redis's, so replicas agree.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
local free = math.floor((now + interval * burst - tat) / interval)
if free < 1 then
  return {0, tat + interval - interval * burst - now}
end
local take = math.min(want, free)
local new_tat = tat + interval * take
redis.call('SET', KEYS[1], new_tat, 'PX', math.max(1, new_tat - now))
return {take, 0}
";

/// Requests a replica has taken from a caller's limit in Redis ahead of time, so that a busy
/// caller costs one Redis call per lease instead of one per request. A lease is at most
/// 100 ms of the caller's sustained rate (so under 600 per minute, as every default limit
/// but `authenticated`, it is one request: the plain GCRA), never more than the burst or 64,
/// and what a replica holds is spent within [`Leases::TTL`] of the oldest lease in it, or
/// lost. Every admitted request was counted in Redis first, so replicas together admit no
/// more than the limit counts; what leases change is when: a request may be spent up to a
/// second after Redis counted it. A caller below its rate whose leases lapse unused loses
/// what they held.
#[derive(Debug, Default)]
pub struct Leases {
    /// Per `<class>:<subject>`: requests held, and until when they may be spent.
    held: std::sync::Mutex<std::collections::HashMap<String, (u32, std::time::Instant)>>,
}

impl Leases {
    const TTL: Duration = Duration::from_secs(1);
    const MAX_KEYS: usize = 100_000;
    const MAX_LEASE: u32 = 64;

    /// Requests of `rate` one Redis call takes.
    fn size(rate: Rate) -> u32 {
        (rate.per_minute / 600)
            .clamp(1, Self::MAX_LEASE)
            .min(rate.burst.max(1))
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (u32, std::time::Instant)>>
    {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Spends one request held for `key`, if there is one.
    fn take(&self, key: &str) -> bool {
        let now = std::time::Instant::now();
        match self.lock().get_mut(key) {
            Some((n, expires)) if *n > 0 && *expires > now => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    /// Keeps `n` requests taken for `key`. Requests still held keep the expiry they came
    /// with (a newer lease joining them expires with them: never later than a second after
    /// the oldest was taken); only an empty or lapsed hold starts a new second.
    fn keep(&self, key: String, n: u32) {
        if n == 0 {
            return;
        }
        let now = std::time::Instant::now();
        let mut held = self.lock();
        if held.len() >= Self::MAX_KEYS && !held.contains_key(&key) {
            held.retain(|_, (n, expires)| *n > 0 && *expires > now);
            if held.len() >= Self::MAX_KEYS {
                return;
            }
        }
        let entry = held.entry(key).or_insert((0, now));
        if entry.0 == 0 || entry.1 <= now {
            *entry = (n, now + Self::TTL);
        } else {
            entry.0 += n;
        }
    }
}

static GCRA_SCRIPT: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::from_lua(GCRA));

enum Verdict {
    Allowed,
    Limited { retry_after_secs: u64 },
}

async fn check_rate(
    edge: &Edge,
    class: &str,
    subject: &str,
    rate: Rate,
) -> Result<Verdict, fred::error::Error> {
    let lease = Leases::size(rate);
    let local_key = (lease > 1).then(|| format!("{class}:{subject}"));
    if let Some(key) = &local_key
        && edge.leases.take(key)
    {
        return Ok(Verdict::Allowed);
    }
    // Without a connection, answer at once (fail open or closed) instead of waiting out the
    // command timeout on every request.
    if !edge.redis.is_connected() {
        return Err(fred::error::Error::new(
            fred::error::ErrorKind::IO,
            "Redis is not connected",
        ));
    }
    let interval_ms = (60_000 / u64::from(rate.per_minute)).max(1);
    let key = edge.keys.key_of("rl", format_args!("{class}:{subject}"));
    // EVALSHA; the script text is sent again only when Redis has not seen it (NOSCRIPT).
    let answer: Vec<i64> = GCRA_SCRIPT
        .evalsha_with_reload(
            &edge.redis,
            vec![key],
            vec![
                interval_ms.to_string(),
                rate.burst.to_string(),
                lease.to_string(),
            ],
        )
        .await?;
    Ok(match answer.as_slice() {
        [taken, ..] if *taken >= 1 => {
            if let Some(key) = local_key {
                edge.leases
                    .keep(key, u32::try_from(*taken - 1).unwrap_or(0));
            }
            Verdict::Allowed
        }
        // Nothing left in Redis; a lease another request of this caller took meanwhile may
        // still hold some here.
        _ if local_key
            .as_deref()
            .is_some_and(|key| edge.leases.take(key)) =>
        {
            Verdict::Allowed
        }
        [_, wait_ms, ..] => Verdict::Limited {
            retry_after_secs: u64::try_from(*wait_ms).unwrap_or(1).div_ceil(1000).max(1),
        },
        _ => Verdict::Allowed,
    })
}

/// Records `user` as active today (for DAU/MAU); fire and forget.
fn record_activity(edge: &Edge, user: Uuid) {
    let key = edge.keys.key_of("active", Utc::now().format("%Y-%m-%d"));
    let redis = edge.redis.clone();
    if !redis.is_connected() {
        return;
    }
    tokio::spawn(async move {
        // 1 when the estimate changed, which includes creating the key: only then does the
        // expiry need setting (kept a little longer than the 30 days MAU reads).
        if let Ok(1) = redis.pfadd::<i64, _, _>(&key, user.to_string()).await {
            let _: Result<bool, _> = redis
                .expire(&key, 35 * 24 * 3600, Some(fred::types::ExpireOptions::NX))
                .await;
        }
    });
}

/// The middleware: identifies the caller, applies the rate limit of the route, and records
/// activity. Runs inside the telemetry middleware, so 429s are measured like any answer.
pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let Some(edge) = req.app_data::<web::Data<Edge>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let who = caller(&edge, &req);
    if let Caller::User(id, _) = &who {
        if let Some(ctx) = req.extensions().get::<telemetry::RequestContext>() {
            ctx.set_user_id(id.to_string());
        }
        record_activity(&edge, *id);
    }
    req.extensions_mut().insert(who.clone());

    // Only `/api` paths are limited: `/health` costs no lookup at all.
    if !req.path().starts_with("/api/") {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    // The path is canonical by now (see `canonical`): the pattern is the route that will
    // serve the request, however the client spelled it. An `/api` path no route serves is
    // still limited, as anonymous.
    let route = req.match_pattern();
    let ip = || client_ip(req.request());
    let (class, subject, rate) = match (route.as_deref(), &who) {
        (Some("/api/v1/auth/login"), _) => ("login", ip(), edge.limits.login),
        (Some("/api/v1/auth/register"), _) => ("register", ip(), edge.limits.register),
        (_, Caller::User(id, _)) => ("user", id.to_string(), edge.limits.authenticated),
        _ => ("anonymous", ip(), edge.limits.anonymous),
    };
    let route = || {
        route
            .clone()
            .unwrap_or_else(|| telemetry::http::UNMATCHED_ROUTE.to_owned())
    };
    match check_rate(&edge, class, &subject, rate).await {
        Ok(Verdict::Allowed) => {}
        Ok(Verdict::Limited { retry_after_secs }) => {
            metrics::counter!(telemetry::metrics::RATE_LIMIT_HITS_TOTAL, "endpoint" => route())
                .increment(1);
            let response = ApiError::rate_limited(retry_after_secs).error_response();
            return Ok(req.into_response(response));
        }
        Err(e) if edge.limits.fail_open => {
            tracing::warn!(error = %e, "rate limiter unavailable (Redis); limiting in this process");
            let key = format!("{class}:{subject}");
            if let Verdict::Limited { retry_after_secs } = edge.local.check(key, rate) {
                metrics::counter!(telemetry::metrics::RATE_LIMIT_HITS_TOTAL, "endpoint" => route())
                    .increment(1);
                let response = ApiError::rate_limited(retry_after_secs).error_response();
                return Ok(req.into_response(response));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "rate limiter unavailable (Redis); failing closed as configured");
            let response = ApiError::unavailable("rate limiting is unavailable; try again shortly")
                .error_response();
            return Ok(req.into_response(response));
        }
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// A handler argument proving the caller is authenticated (missing or invalid token: 401),
/// and who it is. Calls made on their behalf carry them ([`Authenticated::request`]) to the
/// services, in the internal identity token the gateway signs (`platform::identity`).
pub struct Authenticated(pub Uuid);

impl Authenticated {
    /// A gRPC request made on this user's behalf.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        platform::identity::Caller::User(self.0).attach(message)
    }
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let outcome = match req.extensions().get::<Caller>() {
            Some(Caller::User(id, _)) => Ok(Self(*id)),
            Some(Caller::Rejected(why)) => Err(ApiError::unauthenticated(*why)),
            Some(Caller::Anonymous) | None => Err(ApiError::unauthenticated(
                "this needs an access token: Authorization: Bearer <token>",
            )),
        };
        std::future::ready(outcome)
    }
}

/// A handler argument proving the caller is an administrator: their access token carries
/// the `admin` role (401 without a valid token, 403 without the role). Calls made for them
/// carry the role to the services ([`platform::identity::Caller::Admin`]).
pub struct Admin(pub Uuid);

impl Admin {
    /// A gRPC request made on this admin's behalf.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        platform::identity::Caller::Admin(self.0).attach(message)
    }
}

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let outcome = match req.extensions().get::<Caller>() {
            Some(Caller::User(id, true)) => Ok(Self(*id)),
            Some(Caller::User(_, false)) => Err(ApiError::new(
                actix_web::http::StatusCode::FORBIDDEN,
                "permission_denied",
                "this needs the admin role",
            )),
            Some(Caller::Rejected(why)) => Err(ApiError::unauthenticated(*why)),
            Some(Caller::Anonymous) | None => Err(ApiError::unauthenticated(
                "this needs an access token: Authorization: Bearer <token>",
            )),
        };
        std::future::ready(outcome)
    }
}

/// A handler argument: the caller when signed in, nobody otherwise (an invalid token is
/// still 401, never silently anonymous). For routes anyone may call whose answer depends
/// on who asks (a private video is its owner's only).
pub struct Viewer(pub Option<Uuid>);

impl Viewer {
    /// A gRPC request made on this caller's behalf (anonymous when nobody signed in).
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        match self.0 {
            Some(id) => platform::identity::Caller::User(id).attach(message),
            None => tonic::Request::new(message),
        }
    }
}

impl FromRequest for Viewer {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let outcome = match req.extensions().get::<Caller>() {
            Some(Caller::User(id, _)) => Ok(Self(Some(*id))),
            Some(Caller::Rejected(why)) => Err(ApiError::unauthenticated(*why)),
            Some(Caller::Anonymous) | None => Ok(Self(None)),
        };
        std::future::ready(outcome)
    }
}

/// Recomputes `daily_active_users` (today's HyperLogLog) and `monthly_active_users` (the
/// union of the last 30 days) every `every`, until the process stops.
pub fn spawn_activity_gauges(redis: RedisClient, keys: KeySpace, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let today = Utc::now().date_naive();
            let days: Vec<String> = (0..30)
                .filter_map(|back| today.checked_sub_days(chrono::Days::new(back)))
                .map(|day| keys.key_of("active", day.format("%Y-%m-%d")))
                .collect();
            let Some(first) = days.first().cloned() else {
                continue;
            };
            let daily: Result<i64, _> = redis.pfcount(first).await;
            let monthly: Result<i64, _> = redis.pfcount(days).await;
            match (daily, monthly) {
                (Ok(daily), Ok(monthly)) => {
                    metrics::gauge!(telemetry::metrics::DAILY_ACTIVE_USERS).set(daily as f64);
                    metrics::gauge!(telemetry::metrics::MONTHLY_ACTIVE_USERS).set(monthly as f64);
                }
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(error = %e, "active user gauges not refreshed (Redis)");
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn the_client_address_is_the_peer_or_what_the_trusted_proxy_saw() {
        let peer: std::net::SocketAddr = "10.0.0.9:5555".parse().expect("addr");
        let req = TestRequest::default()
            .peer_addr(peer)
            .insert_header(("x-forwarded-for", "6.6.6.6, 203.0.113.7"))
            .to_http_request();
        assert_eq!(
            client_address(&req, 0),
            "10.0.0.9",
            "no proxy: the header is the client's word"
        );
        assert_eq!(
            client_address(&req, 1),
            "203.0.113.7",
            "one proxy: its entry, not the spoofable one"
        );
        assert_eq!(client_address(&req, 2), "6.6.6.6");
        assert_eq!(
            client_address(&req, 3),
            "10.0.0.9",
            "fewer entries than hops: the peer"
        );
    }

    #[test]
    fn a_lease_is_a_tenth_of_a_second_of_the_rate_and_is_spent_locally() {
        let rate = |per_minute, burst| Rate { per_minute, burst };
        assert_eq!(Leases::size(rate(300, 100)), 1, "under 600/min: no lease");
        assert_eq!(Leases::size(rate(1200, 200)), 2);
        assert_eq!(Leases::size(rate(60_000, 30)), 30, "never past the burst");
        assert_eq!(Leases::size(rate(100_000_000, 100_000_000)), 64);

        let leases = Leases::default();
        assert!(!leases.take("user:a"), "nothing taken yet");
        leases.keep("user:a".into(), 2);
        assert!(leases.take("user:a"));
        assert!(leases.take("user:a"));
        assert!(!leases.take("user:a"), "two kept, two spent");
        assert!(!leases.take("user:b"), "per key");
        leases.keep("user:b".into(), 0);
        assert!(!leases.take("user:b"));
        // A lease joining requests still held expires with them.
        leases.keep("user:c".into(), 1);
        let first = leases.lock()["user:c"].1;
        leases.keep("user:c".into(), 3);
        assert_eq!(leases.lock()["user:c"], (4, first));
    }
}
