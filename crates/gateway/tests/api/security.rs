use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::{ServiceName, TestApp};

use crate::support::{
    Account, access_token, authed, expect_error, expect_rate_limited, login, me, metric,
    metric_value, metrics, promtool_check, refresh, register, samples, strong_password, text,
    try_login, user_rows, wait_for_log, wait_for_metric,
};

const BAD_PASSWORD: &str = r#"failed_logins_total{reason="bad_password"}"#;
const UNKNOWN_USER: &str = r#"failed_logins_total{reason="unknown_user"}"#;
const LOCKED: &str = r#"failed_logins_total{reason="locked"}"#;
const ACCOUNT_LOCKED: &str =
    r#"security_events_total{event_type="account_locked",severity="medium"}"#;
const CREDENTIAL_STUFFING: &str =
    r#"suspicious_activity_total{activity_type="credential_stuffing"}"#;
const LOGIN_LIMITED: &str = r#"rate_limit_hits_total{endpoint="/api/v1/auth/login"}"#;
const REGISTER_LIMITED: &str = r#"rate_limit_hits_total{endpoint="/api/v1/auth/register"}"#;
const ME_LIMITED: &str = r#"rate_limit_hits_total{endpoint="/api/v1/me"}"#;

/// Asserts the answer to a wrong login or password and returns its message.
async fn expect_invalid_login(response: reqwest::Response) -> String {
    let body = expect_error(response, 401, "unauthenticated").await;
    text(&body["error"], "message")
}

/// A failed login with a password that is not `account`'s.
async fn fail_login(app: &TestApp, account: &Account) {
    let wrong = strong_password(&account.username);
    let message = expect_invalid_login(try_login(app, &account.username, &wrong).await).await;
    assert_eq!(message, "invalid login or password");
}

/// A test app whose limit `which` (LOGIN, REGISTER, ANONYMOUS, AUTHENTICATED) allows a
/// burst of `n` and `n` a minute.
async fn app_with_limit(which: &str, n: u32) -> TestApp {
    TestApp::builder()
        .env(
            &format!("SOCIALFLOW__RATE_LIMIT__{which}__BURST"),
            &n.to_string(),
        )
        .env(
            &format!("SOCIALFLOW__RATE_LIMIT__{which}__PER_MINUTE"),
            &n.to_string(),
        )
        .spawn()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_401_like_an_unknown_user_and_both_are_counted() {
    let app = TestApp::spawn().await;
    let ann = register(&app, "ann").await;
    let (bad_before, unknown_before) = (
        metric(&app, BAD_PASSWORD).await,
        metric(&app, UNKNOWN_USER).await,
    );

    let wrong = strong_password("ann");
    let by_username = expect_invalid_login(try_login(&app, "ann", &wrong).await).await;
    let by_email = expect_invalid_login(try_login(&app, &ann.email, &wrong).await).await;
    let unknown = expect_invalid_login(try_login(&app, "nobody_here", &ann.password).await).await;
    let unknown_email =
        expect_invalid_login(try_login(&app, "nobody@example.com", &wrong).await).await;
    assert_eq!(by_username, "invalid login or password");
    for message in [by_email, unknown, unknown_email] {
        assert_eq!(
            message, by_username,
            "the answer does not tell which was wrong"
        );
    }

    wait_for_metric(&app, BAD_PASSWORD, bad_before + 2.0).await;
    wait_for_metric(&app, UNKNOWN_USER, unknown_before + 2.0).await;
    // Two failures lock nothing.
    login(&app, "ann", &ann.password).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_failures_lock_the_account_even_against_the_right_password() {
    let app = TestApp::spawn().await;
    let ann = register(&app, "ann").await;
    let bob = register(&app, "bob").await;
    let (locked_before, events_before) = (
        metric(&app, LOCKED).await,
        metric(&app, ACCOUNT_LOCKED).await,
    );

    for _ in 0..5 {
        fail_login(&app, &ann).await;
    }
    for attempt in [ann.username.as_str(), ann.email.as_str()] {
        let body = expect_error(
            try_login(&app, attempt, &ann.password).await,
            429,
            "resource_exhausted",
        )
        .await;
        let message = text(&body["error"], "message");
        assert!(message.contains("locked"), "`{message}`");
    }
    wait_for_metric(&app, ACCOUNT_LOCKED, events_before + 1.0).await;
    wait_for_metric(&app, LOCKED, locked_before + 2.0).await;

    let line = wait_for_log("for the account lock", |l| {
        l["event_category"] == "security"
            && l["event_type"] == "account_locked"
            && l["user_id"] == ann.id.as_str()
    })
    .await;
    assert_eq!(line["severity"], "medium", "{line}");

    // Only that account.
    login(&app, "bob", &bob.password).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_failing_logins_for_five_accounts_is_credential_stuffing() {
    let app = TestApp::spawn().await;
    let mut accounts = Vec::new();
    for name in ["ann", "bob", "cyd", "dee", "eve"] {
        accounts.push(register(&app, name).await);
    }
    let before = metric(&app, CREDENTIAL_STUFFING).await;

    for account in &accounts[..4] {
        fail_login(&app, account).await;
    }
    assert_eq!(
        metric(&app, CREDENTIAL_STUFFING).await,
        before,
        "four accounts are not yet suspicious"
    );
    fail_login(&app, &accounts[4]).await;
    wait_for_metric(&app, CREDENTIAL_STUFFING, before + 1.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_over_the_rate_limit_are_429_with_retry_after_and_counted() {
    let app = app_with_limit("LOGIN", 3).await;
    let ann = register(&app, "ann").await;
    let before = metric(&app, LOGIN_LIMITED).await;

    for _ in 0..3 {
        login(&app, "ann", &ann.password).await;
    }
    let retry_after = expect_rate_limited(try_login(&app, "ann", &ann.password).await).await;
    assert!(
        retry_after <= 60,
        "3 a minute: retry within a minute, not {retry_after}"
    );
    wait_for_metric(&app, LOGIN_LIMITED, before + 1.0).await;

    // Only the login route is that tight.
    assert_eq!(
        app.get(&format!("/api/v1/users/{}", ann.id)).await.status(),
        200
    );
    register(&app, "bob").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_over_the_rate_limit_are_429_and_write_nothing() {
    let app = app_with_limit("REGISTER", 2).await;
    let before = metric(&app, REGISTER_LIMITED).await;
    register(&app, "ann").await;
    register(&app, "bob").await;

    let response = app
        .post_json(
            "/api/v1/auth/register",
            &json!({
                "email": "cyd@example.com",
                "username": "cyd",
                "password": strong_password("cyd"),
                "display_name": "Cyd",
            }),
        )
        .await;
    expect_rate_limited(response).await;
    assert_eq!(user_rows(&app).await, 2);
    wait_for_metric(&app, REGISTER_LIMITED, before + 1.0).await;
}

/// A busy caller's limit is taken from Redis a lease at a time (100 ms of its rate, here 10
/// requests) and spent in the gateway: 64 parallel callers still get no more than the
/// burst plus what the rate refilled meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leased_limits_admit_no_more_than_the_limit_under_parallel_load() {
    let app = TestApp::builder()
        .env("SOCIALFLOW__RATE_LIMIT__ANONYMOUS__BURST", "50")
        .env("SOCIALFLOW__RATE_LIMIT__ANONYMOUS__PER_MINUTE", "6000")
        .spawn()
        .await;
    let started = Instant::now();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        // No route serves it: limited as anonymous, answered without calling a service.
        let calls = (0..64).map(|_| async { app.get("/api/v1/no-such-route").await.status() });
        statuses.extend(futures::future::join_all(calls).await);
    }
    let elapsed = started.elapsed();
    let admitted = statuses.iter().filter(|s| s.as_u16() == 404).count();
    let limited = statuses.iter().filter(|s| s.as_u16() == 429).count();
    assert_eq!(
        admitted + limited,
        statuses.len(),
        "only 404 or 429: {statuses:?}"
    );
    // 6000 a minute is one per 10 ms.
    let refilled = usize::try_from(elapsed.as_millis() / 10).expect("small") + 1;
    assert!(
        admitted <= 50 + refilled,
        "{admitted} admitted in {elapsed:?}: more than the burst of 50 and {refilled} refilled"
    );
    assert!(admitted >= 50, "the burst is admitted: {admitted}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticated_requests_are_limited_per_user_not_per_address() {
    let app = app_with_limit("AUTHENTICATED", 2).await;
    let ann = register(&app, "ann").await;
    let bob = register(&app, "bob").await;
    let ann_token = access_token(&app, &ann).await;
    let bob_token = access_token(&app, &bob).await;
    let before = metric(&app, ME_LIMITED).await;

    for _ in 0..2 {
        assert_eq!(me(&app, &ann_token).await.status(), 200);
    }
    expect_rate_limited(me(&app, &ann_token).await).await;
    // Bob calls from the same address, and has his own allowance.
    assert_eq!(me(&app, &bob_token).await.status(), 200);
    wait_for_metric(&app, ME_LIMITED, before + 1.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_unreachable_logins_still_work_and_detailed_health_names_redis() {
    let app = TestApp::spawn().await;
    let ann = register(&app, "ann").await;
    app.redis_proxy.stop();

    // Rate limiting, failed-login tracking and activity tracking all fail open.
    let token = access_token(&app, &ann).await;
    assert_eq!(me(&app, &token).await.status(), 200);
    fail_login(&app, &ann).await;
    login(&app, &ann.email, &ann.password).await;
    register(&app, "bob").await;

    let response = app.get("/health/detailed").await;
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("json");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["checks"]["redis"]["status"], "unhealthy", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_and_monthly_active_users_count_distinct_users_of_authenticated_requests() {
    let app = TestApp::spawn().await;
    let mut tokens = Vec::new();
    for name in ["ann", "bob", "cyd"] {
        let account = register(&app, name).await;
        tokens.push(access_token(&app, &account).await);
    }
    // Registered and logged in, but never made an authenticated request.
    let dee = register(&app, "dee").await;
    login(&app, "dee", &dee.password).await;

    for token in tokens.iter().chain(tokens.iter()) {
        assert_eq!(me(&app, token).await.status(), 200);
    }

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let exposition = metrics(&app).await;
        let (daily, monthly) = (
            metric_value(&exposition, "daily_active_users"),
            metric_value(&exposition, "monthly_active_users"),
        );
        if daily == 3.0 && monthly == 3.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after 10 s: daily_active_users {daily}, monthly_active_users {monthly}; expected 3 and 3"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_metrics_pass_promtool_and_name_no_user_or_address() {
    let app = app_with_limit("LOGIN", 14).await;
    let mut accounts = Vec::new();
    for name in ["ann", "bob", "cyd", "dee", "eve"] {
        accounts.push(register(&app, name).await);
    }
    let ann = &accounts[0];

    // Every security series: failures of each reason, a lock, credential stuffing (five
    // accounts failing from one address), a refresh token reuse, a rate limit hit, and
    // activity.
    for account in &accounts[..4] {
        fail_login(&app, account).await;
    }
    let tokens = login(&app, "ann", &ann.password).await;
    let token = text(&tokens, "access_token");
    assert_eq!(me(&app, &token).await.status(), 200);
    let follow = authed(
        &app,
        reqwest::Method::PUT,
        &format!("/api/v1/users/{}/follow", accounts[1].id),
        &token,
    )
    .send()
    .await
    .expect("gateway answers");
    assert_eq!(follow.status(), 204);
    expect_invalid_login(try_login(&app, "nobody_here", "not-the-password-1").await).await;
    let eve = &accounts[4];
    for _ in 0..5 {
        fail_login(&app, eve).await;
    }
    expect_error(
        try_login(&app, "eve", &eve.password).await,
        429,
        "resource_exhausted",
    )
    .await;
    let spent = text(&tokens, "refresh_token");
    let renewed: Value = refresh(&app, &spent).await.json().await.expect("tokens");
    let renewed = text(&renewed, "refresh_token");
    assert_eq!(refresh(&app, &renewed).await.status(), 200);
    assert_eq!(refresh(&app, &spent).await.status(), 401);
    // Out of login allowance (14 a minute) within a few more attempts.
    let mut limited = false;
    for _ in 0..20 {
        let response = try_login(&app, "nobody_here", "not-the-password-1").await;
        if response.status() == 429 {
            expect_rate_limited(response).await;
            limited = true;
            break;
        }
    }
    assert!(limited, "the login rate limit never answered 429");

    let expected = [
        "user_registrations_total",
        BAD_PASSWORD,
        UNKNOWN_USER,
        LOCKED,
        ACCOUNT_LOCKED,
        r#"security_events_total{event_type="refresh_token_reuse",severity="high"}"#,
        CREDENTIAL_STUFFING,
        LOGIN_LIMITED,
        "daily_active_users",
        "monthly_active_users",
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let exposition = metrics(&app).await;
        let missing: Vec<&str> = expected
            .iter()
            .copied()
            .filter(|s| metric_value(&exposition, s) < 1.0)
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "still 0 or absent: {missing:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let mut personal: Vec<String> = vec!["nobody_here".to_owned()];
    for account in &accounts {
        personal.extend([
            account.id.clone(),
            account.username.clone(),
            account.email.clone(),
        ]);
    }
    for name in ServiceName::ALL {
        let response = app.admin_get(name, "/metrics").await;
        assert_eq!(response.status(), 200);
        let exposition = response.text().await.expect("metrics body");
        promtool_check(&exposition);
        for sample in samples(&exposition) {
            for (label, value) in &sample.labels {
                assert!(
                    !value.contains("127.0.0.1"),
                    "{name:?}: a client address became a label: {}{{{label}=\"{value}\"}}",
                    sample.name
                );
                assert!(
                    !personal.contains(value)
                        && !accounts
                            .iter()
                            .any(|a| value.contains(&a.id) || value.contains(&a.email)),
                    "{name:?}: a user became a label: {}{{{label}=\"{value}\"}}",
                    sample.name
                );
            }
        }
    }
}
