//! `loadgen`: load against a running Social Flow gateway.
//!
//! ```text
//! loadgen run  --url http://127.0.0.1:8000 --scenario read --rate 2000 --duration 30s \
//!              [--concurrency 64 | --connections 64] [--warmup 5s] [--ramp 5s] [--seed-file seed.json] \
//!              [--kpi-p95-ms 500] [--kpi-rps 1000] [--kpi-error-rate 0.001] [--json out.json]
//! loadgen seed --url http://127.0.0.1:8000 --database-url postgres://... --users 50 \
//!              --videos-per-user 4 --follows 10 --out seed.json
//! ```
//!
//! Scenarios: `health`, `read` (a video by id, Zipf over the seeded ids), `list`, `feed`,
//! `write` (like/unlike, follow/unfollow as seeded users), `upload` (`POST /api/v1/videos`
//! of an `--upload-bytes` file, 1 MiB by default, as seeded users), and `mixed` (70% read, 15% list,
//! 10% feed, 5% write). `--rate` runs an open loop (latency from each request's due time):
//! a task per request (unbounded connections, as many clients would), or with
//! `--connections N` N clients taking due requests in turn (as wrk2); `--concurrency`
//! without `--rate` a closed loop. Exit code 1 when a KPI fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use loadgen::kpi::{Kpis, verdict};
use loadgen::report::Report;
use loadgen::schedule::{OpenLoop, latency};
use loadgen::stats::{NO_ANSWER, Stats};
use loadgen::zipf::{Rng, Zipf};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, Semaphore};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Seed {
    users: Vec<SeedUser>,
    videos: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SeedUser {
    id: String,
    username: String,
    password: String,
    /// The access token the seed logged in with: runs use it while it is valid (logins are
    /// rate limited per address), and log in again only without one.
    #[serde(default)]
    token: Option<String>,
}

struct Args(Vec<String>);

impl Args {
    fn value(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .position(|a| a == name)
            .and_then(|i| self.0.get(i + 1))
            .map(String::as_str)
    }

    fn parse<T: std::str::FromStr>(&self, name: &str, default: T) -> anyhow::Result<T> {
        match self.value(name) {
            None => Ok(default),
            Some(raw) => raw
                .parse()
                .map_err(|_| anyhow::anyhow!("{name} must be a number, got `{raw}`")),
        }
    }

    fn duration(&self, name: &str, default: Duration) -> anyhow::Result<Duration> {
        match self.value(name) {
            None => Ok(default),
            Some(raw) => parse_duration(raw).with_context(|| format!("{name}: `{raw}`")),
        }
    }
}

/// `30s`, `2m`, `500ms`, or plain seconds.
fn parse_duration(raw: &str) -> anyhow::Result<Duration> {
    let (number, unit) = match raw.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => raw.split_at(i),
        None => (raw, "s"),
    };
    let n: f64 = number.parse().context("a number")?;
    Ok(match unit {
        "ms" => Duration::from_secs_f64(n / 1000.0),
        "s" => Duration::from_secs_f64(n),
        "m" => Duration::from_secs_f64(n * 60.0),
        other => bail!("unknown unit `{other}` (ms, s or m)"),
    })
}

#[derive(Clone)]
struct Target {
    http: reqwest::Client,
    url: String,
    seed: Arc<Seed>,
    zipf: Arc<Zipf>,
    /// The file of the `upload` scenario: an MP4 signature, then zeros.
    upload: Arc<Vec<u8>>,
}

/// An MP4 file's first bytes (`ftyp` box): what the upload path checks.
const MP4_SIGNATURE: &[u8] = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2";

impl Target {
    /// One request of `scenario`: its status (0 without an answer).
    async fn request(&self, scenario: &str, rng: &mut Rng) -> u16 {
        let scenario = match scenario {
            "mixed" => match rng.next_u64() % 100 {
                0..70 => "read",
                70..85 => "list",
                85..95 => "feed",
                _ => "write",
            },
            other => other,
        };
        let mut random = [0u8; 24];
        for chunk in random.chunks_mut(8) {
            chunk.copy_from_slice(&rng.next_u64().to_le_bytes()[..chunk.len()]);
        }
        let user = (!self.seed.users.is_empty())
            .then(|| &self.seed.users[(rng.next_u64() % self.seed.users.len() as u64) as usize]);
        let video =
            (!self.seed.videos.is_empty()).then(|| self.seed.videos[self.zipf.sample(rng)].clone());
        let request = match (scenario, video, user) {
            ("read", Some(video), _) => {
                self.http.get(format!("{}/api/v1/videos/{video}", self.url))
            }
            ("list", _, _) => self
                .http
                .get(format!("{}/api/v1/videos?limit=20", self.url)),
            ("feed", _, Some(user)) => self
                .http
                .get(format!("{}/api/v1/feed?limit=20", self.url))
                .bearer_auth(user.token.as_deref().unwrap_or_default()),
            ("upload", _, Some(user)) => {
                let file = reqwest::multipart::Part::bytes(self.upload.as_ref().clone())
                    .file_name("load.mp4")
                    .mime_str("video/mp4")
                    .unwrap_or_else(|_| reqwest::multipart::Part::bytes(Vec::new()));
                let form = reqwest::multipart::Form::new()
                    .text("title", "Load test upload")
                    .part("file", file);
                self.http
                    .post(format!("{}/api/v1/videos", self.url))
                    .bearer_auth(user.token.as_deref().unwrap_or_default())
                    .multipart(form)
            }
            ("write", Some(video), Some(user)) => {
                let method = if rng.next_u64().is_multiple_of(2) {
                    reqwest::Method::PUT
                } else {
                    reqwest::Method::DELETE
                };
                self.http
                    .request(method, format!("{}/api/v1/videos/{video}/like", self.url))
                    .bearer_auth(user.token.as_deref().unwrap_or_default())
            }
            _ => self.http.get(format!("{}/health", self.url)),
        };
        match request
            .header("traceparent", loadgen::traceparent(random))
            .header("baggage", loadgen::SYNTHETIC_BAGGAGE)
            .send()
            .await
        {
            Ok(response) => {
                let status = response.status().as_u16();
                let _ = response.bytes().await;
                status
            }
            Err(_) => NO_ANSWER,
        }
    }
}

async fn login(http: &reqwest::Client, url: &str, user: &mut SeedUser) -> anyhow::Result<()> {
    let body: serde_json::Value = http
        .post(format!("{url}/api/v1/auth/login"))
        .json(&serde_json::json!({ "login": user.username, "password": user.password }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    user.token = body["access_token"].as_str().map(str::to_owned);
    Ok(())
}

async fn run(args: &Args) -> anyhow::Result<bool> {
    let url = args
        .value("--url")
        .unwrap_or("http://127.0.0.1:8000")
        .trim_end_matches('/')
        .to_owned();
    let scenario = args.value("--scenario").unwrap_or("health").to_owned();
    if !["health", "read", "list", "feed", "write", "upload", "mixed"].contains(&scenario.as_str())
    {
        bail!("unknown scenario `{scenario}` (health, read, list, feed, write, upload, mixed)");
    }
    let upload_bytes: usize = args.parse("--upload-bytes", 1024 * 1024)?;
    let duration = args.duration("--duration", Duration::from_secs(10))?;
    let warmup = args.duration("--warmup", Duration::ZERO)?;
    let ramp = args.duration("--ramp", Duration::ZERO)?;
    let rate: Option<f64> = args.value("--rate").map(str::parse).transpose()?;
    let concurrency: usize = args.parse("--concurrency", 32)?;
    let kpis = Kpis {
        p95_ms: args.parse("--kpi-p95-ms", Kpis::default().p95_ms)?,
        min_rps: args.parse("--kpi-rps", Kpis::default().min_rps)?,
        max_error_rate: args.parse("--kpi-error-rate", Kpis::default().max_error_rate)?,
    };
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency.max(64))
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut seed: Seed = match args.value("--seed-file") {
        Some(path) => serde_json::from_str(&std::fs::read_to_string(path)?)?,
        None => Seed::default(),
    };
    if ["read", "write", "mixed"].contains(&scenario.as_str()) && seed.videos.is_empty() {
        bail!("{scenario} needs --seed-file with videos (loadgen seed)");
    }
    if ["feed", "write", "upload", "mixed"].contains(&scenario.as_str()) {
        if seed.users.is_empty() {
            bail!("{scenario} needs --seed-file with users (loadgen seed)");
        }
        for user in seed.users.iter_mut().take(50) {
            login(&http, &url, user)
                .await
                .context("logging in a seeded user")?;
        }
        seed.users.truncate(50);
    }
    let mut upload = MP4_SIGNATURE.to_vec();
    upload.resize(upload_bytes.max(MP4_SIGNATURE.len()), 0);
    let target = Target {
        upload: Arc::new(upload),
        zipf: Arc::new(Zipf::new(seed.videos.len().max(1), 1.0)),
        seed: Arc::new(seed),
        http,
        url,
    };

    let stats = Arc::new(Mutex::new(Stats::new()));
    let sent = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let end = warmup + duration;
    let progress = {
        let (sent, failed) = (sent.clone(), failed.clone());
        tokio::spawn(async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let now = sent.load(Ordering::Relaxed);
                eprint!(
                    "\r{:>6.1} s  {:>9} sent  {:>7} req/s  {:>6} errors   ",
                    start.elapsed().as_secs_f64(),
                    now,
                    now - last,
                    failed.load(Ordering::Relaxed)
                );
                last = now;
            }
        })
    };

    let connections: Option<usize> = args.value("--connections").map(str::parse).transpose()?;
    // Clients that each send a request when the previous one is answered: a closed loop
    // (each request starts when its client is free), or, with a rate and `--connections`,
    // an open loop over a fixed set of connections (as wrk2 does): each client takes the
    // next due request when it is free, sends it at its due time or at once when late, and
    // measures from the due time, so a stall still counts for every request that should
    // have gone out during it. No task or connection per request: the load generator
    // costs what the closed loop costs, and the rate it can offer is bounded by the
    // clients times what one connection can do.
    let clients = |count: usize, schedule: Option<OpenLoop>| {
        let next = Arc::new(AtomicU64::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for c in 0..count.max(1) {
            let (target, scenario, stats, sent, failed, next) = (
                target.clone(),
                scenario.clone(),
                stats.clone(),
                sent.clone(),
                failed.clone(),
                next.clone(),
            );
            tasks.spawn(async move {
                let mut rng = Rng::new((c as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                let mut local = Stats::new();
                loop {
                    let began = match schedule {
                        Some(open) => {
                            let due = open.due_at(next.fetch_add(1, Ordering::Relaxed));
                            if due >= end {
                                break;
                            }
                            tokio::time::sleep_until((start + due).into()).await;
                            due
                        }
                        None => {
                            let now = start.elapsed();
                            if now >= end {
                                break;
                            }
                            now
                        }
                    };
                    let status = target.request(&scenario, &mut rng).await;
                    let took = latency(began, start.elapsed());
                    sent.fetch_add(1, Ordering::Relaxed);
                    if !(200..400).contains(&status) {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    if began >= warmup {
                        local.record(status, took);
                    }
                }
                stats.lock().await.merge(&local);
            });
        }
        tasks
    };
    let mode = if let (Some(rate), Some(connections)) = (rate, connections) {
        let mut tasks = clients(connections, Some(OpenLoop { rate, ramp }));
        while tasks.join_next().await.is_some() {}
        "open"
    } else if let Some(rate) = rate {
        // Open loop: each request is due at its time; at most 10 000 in flight.
        let open = OpenLoop { rate, ramp };
        let slots = Arc::new(Semaphore::new(10_000));
        let mut tasks = tokio::task::JoinSet::new();
        let mut n = 0u64;
        loop {
            let due = open.due_at(n);
            if due >= end {
                break;
            }
            tokio::time::sleep_until((start + due).into()).await;
            let permit = slots.clone().acquire_owned().await?;
            let (target, scenario, stats, sent, failed) = (
                target.clone(),
                scenario.clone(),
                stats.clone(),
                sent.clone(),
                failed.clone(),
            );
            tasks.spawn(async move {
                let mut rng = Rng::new(n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xABCD);
                let status = target.request(&scenario, &mut rng).await;
                let took = latency(due, start.elapsed());
                sent.fetch_add(1, Ordering::Relaxed);
                if !(200..400).contains(&status) {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                if due >= warmup {
                    stats.lock().await.record(status, took);
                }
                drop(permit);
            });
            n += 1;
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
        "open"
    } else {
        let mut tasks = clients(concurrency, None);
        while tasks.join_next().await.is_some() {}
        "closed"
    };
    progress.abort();
    eprintln!();
    let seconds = (start.elapsed().saturating_sub(warmup))
        .as_secs_f64()
        .min(duration.as_secs_f64())
        .max(1e-9);
    let stats = stats.lock().await;
    let rps = stats.count() as f64 / seconds;
    let checks = verdict(&kpis, &stats.percentiles(), rps, stats.error_rate());
    let report = Report::new(&scenario, mode, seconds, &stats, checks);
    print!("{}", report.table());
    if let Some(path) = args.value("--json") {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    Ok(report.pass)
}

async fn seed(args: &Args) -> anyhow::Result<()> {
    let url = args
        .value("--url")
        .unwrap_or("http://127.0.0.1:8000")
        .trim_end_matches('/')
        .to_owned();
    let users: usize = args.parse("--users", 20)?;
    let per_user: usize = args.parse("--videos-per-user", 3)?;
    let follows: usize = args.parse("--follows", 5)?;
    let out = args.value("--out").unwrap_or("seed.json");
    let database = args.value("--database-url").context(
        "--database-url: videos are inserted in SQL (uploading them would take minutes)",
    )?;
    let http = reqwest::Client::new();
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let mut seed = Seed::default();
    for i in 0..users {
        let username = format!("load{run}{i}");
        let password = format!("Load-{run}-{}-pw", uuid::Uuid::new_v4().simple());
        let body: serde_json::Value = http
            .post(format!("{url}/api/v1/auth/register"))
            .json(&serde_json::json!({
                "email": format!("{username}@example.com"),
                "username": username,
                "password": password,
                "display_name": format!("Load user {i}"),
            }))
            .send()
            .await?
            .error_for_status()
            .context("registering (raise rate_limit.register for seeding)")?
            .json()
            .await?;
        let id = body["id"].as_str().context("a user id")?.to_owned();
        seed.users.push(SeedUser {
            id,
            username,
            password,
            token: None,
        });
    }
    for user in &mut seed.users {
        login(&http, &url, user).await?;
    }
    let (client, connection) = tokio_postgres_connect(database).await?;
    let driver = tokio::spawn(connection);
    for user in &seed.users {
        for _ in 0..per_user {
            let id = uuid::Uuid::new_v4();
            client
                .execute(
                    "INSERT INTO videos.videos
                        (id, owner_id, title, description, duration_seconds, status, visibility, tags)
                     VALUES ($1, $2::text::uuid, 'A seeded video', 'loadgen', 120, 'ready', 'public', ARRAY['load'])",
                    &[&id, &user.id],
                )
                .await?;
            seed.videos.push(id.to_string());
        }
    }
    driver.abort();
    let n = seed.users.len();
    for (i, user) in seed.users.iter().enumerate() {
        let token = user.token.clone().unwrap_or_default();
        for k in 1..=follows.min(n.saturating_sub(1)) {
            let other = &seed.users[(i + k) % n];
            http.put(format!("{url}/api/v1/users/{}/follow", other.id))
                .bearer_auth(&token)
                .send()
                .await?
                .error_for_status()?;
        }
        if let Some(video) = seed.videos.get(i % seed.videos.len().max(1)) {
            http.put(format!("{url}/api/v1/videos/{video}/like"))
                .bearer_auth(&token)
                .send()
                .await?
                .error_for_status()?;
        }
    }
    std::fs::write(out, serde_json::to_vec_pretty(&seed)?)?;
    println!(
        "seeded {} users, {} videos, {} follows each: {out}",
        seed.users.len(),
        seed.videos.len(),
        follows
    );
    Ok(())
}

async fn tokio_postgres_connect(
    url: &str,
) -> anyhow::Result<(
    tokio_postgres::Client,
    tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
)> {
    Ok(tokio_postgres::connect(url, tokio_postgres::NoTls).await?)
}

/// The allocator of the whole process (docs/performance.md: cheaper cross-thread frees).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let args = Args(std::env::args().skip(1).collect());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let outcome = runtime.block_on(async {
        match args.0.first().map(String::as_str) {
            Some("seed") => seed(&args).await.map(|()| true),
            Some("run") => run(&args).await,
            _ => {
                eprintln!("usage: loadgen run|seed [options] (see crates/loadgen/src/main.rs)");
                Ok(false)
            }
        }
    });
    match outcome {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
