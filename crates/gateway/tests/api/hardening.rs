//! What probing the running stack from outside found, each closed: rate limits that follow
//! the route whatever the spelling, bounded password hashing, bounded login strings,
//! atomic lockouts with one answer for every spelling, refresh tokens that survive a lost
//! answer but not a logout, and a process that refuses the development key.

use std::time::Duration;

use serde_json::{Value, json};
use testkit::{ServiceName, TestApp};

use crate::support::{
    expect_error, expect_rate_limited, login, metric, refresh, register, strong_password, text,
    try_login,
};

const LOGIN_REQUESTS: &str = r#"http_requests_total{endpoint="/api/v1/auth/login"}"#;
const REGISTER_REQUESTS: &str = r#"http_requests_total{endpoint="/api/v1/auth/register"}"#;
const LOGIN_LIMITED: &str = r#"rate_limit_hits_total{endpoint="/api/v1/auth/login"}"#;
const REGISTER_LIMITED: &str = r#"rate_limit_hits_total{endpoint="/api/v1/auth/register"}"#;
const HASHING_REJECTED: &str = "password_hashing_rejected_total";

/// `path` spelt every way a client might, all served by the same route.
fn spellings(path: &str) -> Vec<String> {
    let (head, last) = path.rsplit_once('/').expect("a path");
    let first = last.as_bytes()[0];
    let rest = &last[1..];
    vec![
        format!("{head}/%{first:02X}{rest}"),
        format!("{head}/%{first:02x}{rest}"),
        path.replacen("/auth/", "//auth/", 1),
        format!("{path}/"),
        path.replacen("/auth/", "/%61uth/", 1),
        format!("/{path}"),
    ]
}

async fn post(app: &TestApp, path: &str, body: &Value) -> reqwest::Response {
    app.http
        .post(format!("{}{path}", app.gateway_url()))
        .json(body)
        .send()
        .await
        .expect("gateway answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_spelling_of_login_and_register_is_limited_and_measured_as_that_route() {
    let app = TestApp::builder()
        .env("SOCIALFLOW__RATE_LIMIT__LOGIN__BURST", "3")
        .env("SOCIALFLOW__RATE_LIMIT__LOGIN__PER_MINUTE", "1")
        .env("SOCIALFLOW__RATE_LIMIT__REGISTER__BURST", "3")
        .env("SOCIALFLOW__RATE_LIMIT__REGISTER__PER_MINUTE", "1")
        .spawn()
        .await;
    for (route, requests, limited, body) in [
        (
            "/api/v1/auth/login",
            LOGIN_REQUESTS,
            LOGIN_LIMITED,
            json!({"login": "nobody_here", "password": "wrong password 42"}),
        ),
        (
            "/api/v1/auth/register",
            REGISTER_REQUESTS,
            REGISTER_LIMITED,
            json!({"email": "x", "username": "x", "password": "x", "display_name": "x"}),
        ),
    ] {
        let (requests_before, limited_before) =
            (metric(&app, requests).await, metric(&app, limited).await);
        let spelt = spellings(route);
        assert!(spelt.len() >= 5);
        let mut statuses = Vec::new();
        for path in &spelt {
            let response = post(&app, path, &body).await;
            let status = response.status().as_u16();
            if status == 429 {
                expect_rate_limited(response).await;
            } else {
                // Served by the route itself: its own answer, not a 404.
                let answer: Value = response.json().await.expect("json");
                assert!(
                    matches!(status, 400 | 401),
                    "{path} was not served by {route}: {status} {answer}"
                );
            }
            statuses.push(status);
        }
        assert_eq!(
            statuses.iter().filter(|s| **s == 429).count(),
            spelt.len() - 3,
            "a burst of 3 whatever the spelling: {spelt:?} answered {statuses:?}"
        );
        assert_eq!(
            metric(&app, requests).await,
            requests_before + spelt.len() as f64,
            "every spelling is measured as {route}"
        );
        assert_eq!(
            metric(&app, limited).await,
            limited_before + (spelt.len() - 3) as f64
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_path_no_route_serves_is_limited_as_anonymous() {
    let app = TestApp::builder()
        .env("SOCIALFLOW__RATE_LIMIT__ANONYMOUS__BURST", "2")
        .env("SOCIALFLOW__RATE_LIMIT__ANONYMOUS__PER_MINUTE", "1")
        .spawn()
        .await;
    for path in ["/api/v1/nothing-here", "/api/v1/%6Eothing", "/api//v2/x"] {
        let response = app.get(path).await;
        if response.status() == 429 {
            expect_rate_limited(response).await;
        } else {
            expect_error(response, 404, "not_found").await;
        }
    }
    expect_rate_limited(app.get("/api/v1/nothing-here").await).await;
}

/// The process's peak resident memory, from the kernel.
fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_logins_stay_within_the_hashing_bound_and_the_excess_gets_503() {
    const SLOTS: u64 = 2;
    let app = TestApp::builder()
        .env(
            "SOCIALFLOW__AUTH__MAX_CONCURRENT_HASHES",
            &SLOTS.to_string(),
        )
        .env("SOCIALFLOW__AUTH__HASH_QUEUE_TIMEOUT_MS", "50")
        .spawn()
        .await;
    let rejected_before = metric(&app, HASHING_REJECTED).await;
    let before = peak_rss_bytes();
    let calls: Vec<_> = (0..64)
        .map(|i| {
            let http = app.http.clone();
            let url = format!("{}/api/v1/auth/login", app.gateway_url());
            tokio::spawn(async move {
                http.post(url)
                    .json(&json!({"login": format!("nobody_{i}"), "password": "wrong password 42"}))
                    .send()
                    .await
                    .expect("gateway answers")
            })
        })
        .collect();
    let mut overloaded = 0;
    for call in calls {
        let response = call.await.expect("joined");
        match response.status().as_u16() {
            401 => {}
            503 => {
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                assert!(retry_after.is_some_and(|s| s >= 1), "{retry_after:?}");
                expect_error(response, 503, "overloaded").await;
                overloaded += 1;
            }
            other => panic!("a login answered {other}: {:?}", response.text().await),
        }
    }
    assert!(
        overloaded > 0,
        "64 logins through 2 slots with 50 ms of patience"
    );
    assert_eq!(
        metric(&app, HASHING_REJECTED).await,
        rejected_before + f64::from(overloaded)
    );
    // Each argon2id hash holds 19 MiB: the slots bound what hashing can add, whatever the
    // number of callers (without the bound, 64 at once added over a GiB).
    let growth = peak_rss_bytes().saturating_sub(before);
    let bound = SLOTS * 20 * 1024 * 1024 + 48 * 1024 * 1024;
    assert!(
        growth < bound,
        "peak RSS grew {} MiB, bound {} MiB",
        growth >> 20,
        bound >> 20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_over_254_bytes_is_refused_and_no_login_string_becomes_a_redis_key() {
    let app = TestApp::spawn().await;
    let long = format!("{}@example.com", "a".repeat(243));
    assert_eq!(long.len(), 255);
    let body = expect_error(
        try_login(&app, &long, "wrong password 42").await,
        400,
        "invalid_argument",
    )
    .await;
    assert!(text(&body["error"], "message").contains("login"), "{body}");

    // user-service refuses it too, for any caller that is not the gateway.
    let mut users = proto::user::v1::user_service_client::UserServiceClient::new(
        app.service_channel(ServiceName::User, platform::identity::Caller::Anonymous)
            .await,
    );
    let err = users
        .login(proto::user::v1::LoginRequest {
            login: long,
            password: "wrong password 42".into(),
            client_ip: String::new(),
        })
        .await
        .expect_err("too long");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().starts_with("login:"), "{}", err.message());

    let marker = format!("unknown_{}", testkit::unique_suffix());
    expect_error(
        try_login(&app, &marker, "wrong password 42").await,
        401,
        "unauthenticated",
    )
    .await;
    let keys = redis_keys(&app).await;
    assert!(
        keys.iter().any(|k| k.contains("fails:login:")),
        "the unknown login's attempts are counted: {keys:?}"
    );
    assert!(
        keys.iter().all(|k| !k.contains(&marker)),
        "what a client sent became a key: {keys:?}"
    );
}

async fn redis_keys(app: &TestApp) -> Vec<String> {
    use fred::prelude::*;
    let client = Builder::from_config(Config::from_url("redis://127.0.0.1:6379").expect("url"))
        .build()
        .expect("client");
    client.init().await.expect("redis");
    let keys: Vec<String> = client
        .custom(fred::cmd!("KEYS"), vec![format!("{}*", app.redis_prefix)])
        .await
        .expect("KEYS");
    let _ = client.quit().await;
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_guesses_get_no_more_tries_than_the_lockout_allows() {
    let app = TestApp::spawn().await;
    let ann = register(&app, "ann").await;
    let guesses: Vec<_> = (0..20)
        .map(|_| {
            let http = app.http.clone();
            let url = format!("{}/api/v1/auth/login", app.gateway_url());
            let wrong = strong_password("ann");
            tokio::spawn(async move {
                http.post(url)
                    .json(&json!({"login": "ann", "password": wrong}))
                    .send()
                    .await
                    .expect("gateway answers")
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut checked = 0;
    for guess in guesses {
        match guess.await.expect("joined") {
            401 => checked += 1,
            429 => {}
            other => panic!("a guess answered {other}"),
        }
    }
    assert!(
        checked <= 5,
        "{checked} of 20 parallel guesses had their password checked; the limit is 5"
    );
    expect_error(
        try_login(&app, "ann", &ann.password).await,
        429,
        "resource_exhausted",
    )
    .await;
}

/// Status, Retry-After and body of a locked answer, without the request id.
async fn locked_answer(app: &TestApp, login: &str, password: &str) -> (u16, Option<String>, Value) {
    let response = try_login(app, login, password).await;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().expect("ascii").to_owned());
    let mut body: Value = response.json().await.expect("json");
    body["error"]
        .as_object_mut()
        .expect("error")
        .remove("request_id");
    (status, retry_after, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_account_answers_the_same_for_every_spelling_and_at_any_time() {
    let app = TestApp::spawn().await;
    let ann = register(&app, "ann").await;
    for _ in 0..6 {
        let _ = try_login(&app, "ann", &strong_password("ann")).await;
    }
    let by_username = locked_answer(&app, "ann", &ann.password).await;
    assert_eq!(by_username.0, 429, "{by_username:?}");
    assert!(
        by_username.1.is_some(),
        "a locked answer says when to retry"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let by_email = locked_answer(&app, &ann.email, &ann.password).await;
    let by_upper_email = locked_answer(&app, &ann.email.to_uppercase(), "whatever it is").await;
    assert_eq!(
        by_email, by_username,
        "nothing ties the email to the username"
    );
    assert_eq!(by_upper_email, by_username);
    // An unknown login locked the same way answers the same too.
    for _ in 0..6 {
        let _ = try_login(&app, "nobody_at_all", "wrong password 42").await;
    }
    assert_eq!(locked_answer(&app, "nobody_at_all", "x").await, by_username);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_retried_after_a_lost_answer_keeps_the_session_within_the_grace() {
    let app = TestApp::builder()
        .env("SOCIALFLOW__AUTH__REFRESH_REUSE_GRACE_SECS", "2")
        .spawn()
        .await;
    let ann = register(&app, "ann").await;
    let first = text(&login(&app, "ann", &ann.password).await, "refresh_token");
    // The answer to this rotation is "lost": the client retries with the same token.
    let lost = refresh(&app, &first).await;
    assert_eq!(lost.status(), 200);
    let lost: Value = lost.json().await.expect("json");
    let retried = refresh(&app, &first).await;
    assert_eq!(retried.status(), 200, "a retry is not a replay");
    let retried: Value = retried.json().await.expect("json");
    // The session goes on from the retry; the token never received is dead.
    let next = refresh(&app, &text(&retried, "refresh_token")).await;
    assert_eq!(next.status(), 200);
    expect_error(
        refresh(&app, &text(&lost, "refresh_token")).await,
        401,
        "unauthenticated",
    )
    .await;

    // After the grace, presenting a rotated token is reuse again.
    let second = text(&login(&app, "ann", &ann.password).await, "refresh_token");
    let third: Value = refresh(&app, &second).await.json().await.expect("json");
    tokio::time::sleep(Duration::from_millis(2200)).await;
    expect_error(refresh(&app, &second).await, 401, "unauthenticated").await;
    expect_error(
        refresh(&app, &text(&third, "refresh_token")).await,
        401,
        "unauthenticated",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ends_at_its_absolute_lifetime_however_often_it_is_refreshed() {
    let app = TestApp::builder()
        .env("SOCIALFLOW__AUTH__SESSION_MAX_LIFETIME_SECS", "2")
        .spawn()
        .await;
    let ann = register(&app, "ann").await;
    let mut token = text(&login(&app, "ann", &ann.password).await, "refresh_token");
    for _ in 0..2 {
        let renewed: Value = refresh(&app, &token).await.json().await.expect("json");
        token = text(&renewed, "refresh_token");
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    expect_error(refresh(&app, &token).await, 401, "unauthenticated").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_refresh_token_rotated_during_a_logout_survives_it() {
    let app = TestApp::spawn().await;
    let ann = register(&app, "ann").await;
    for round in 0..15 {
        let token = text(&login(&app, "ann", &ann.password).await, "refresh_token");
        let body = json!({ "refresh_token": token });
        let rotate = refresh(&app, &token);
        let logout = app.post_json("/api/v1/auth/logout", &body);
        let (rotated, logged_out) = tokio::join!(rotate, logout);
        assert_eq!(logged_out.status(), 204, "round {round}");
        if rotated.status() == 200 {
            let rotated: Value = rotated.json().await.expect("json");
            expect_error(
                refresh(&app, &text(&rotated, "refresh_token")).await,
                401,
                "unauthenticated",
            )
            .await;
        }
    }
}

#[test]
fn the_gateway_binary_refuses_the_development_key_unless_allowed() {
    let dir = tempfile_dir();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(&dir)
        .output()
        .expect("the gateway binary runs");
    let _ = std::fs::remove_dir(&dir);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("auth.")).collect();
    assert_eq!(lines.len(), 1, "one line naming the key: {stderr}");
    assert!(lines[0].contains("`auth.jwt_secret`"), "{stderr}");
    assert!(lines[0].contains("development key"), "{stderr}");
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sf-start-{}", testkit::unique_suffix()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
