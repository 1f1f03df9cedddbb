//! Deadlines end to end: a call that runs out of time is DEADLINE_EXCEEDED (504 with a
//! JSON body), and what is left of the budget shrinks hop by hop, so a service never waits
//! on another longer than its own caller will wait for it.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::{ServiceName, TestApp};

use crate::support;

/// Injects `fault` (the admin API's JSON) into every call of `rpc` that `name` serves.
async fn put_fault(app: &TestApp, name: ServiceName, rpc: &str, fault: Value) {
    let response = app
        .http
        .put(format!("{}/admin/faults/{rpc}", app.admin_url(name)))
        .json(&fault)
        .send()
        .await
        .expect("admin answers");
    assert!(response.status().is_success(), "{}", response.status());
}

async fn put_latency(app: &TestApp, name: ServiceName, rpc: &str, delay_ms: u64) {
    let fault = json!({ "kind": "latency", "delay_ms": delay_ms, "ratio": 1.0 });
    put_fault(app, name, rpc, fault).await;
}

/// Three calls in ten of `rpc` fail UNAVAILABLE.
async fn put_unavailable(app: &TestApp, name: ServiceName, rpc: &str) {
    let fault = json!({ "kind": "error", "code": "UNAVAILABLE", "ratio": 0.3 });
    put_fault(app, name, rpc, fault).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_past_its_deadline_is_a_504_measured_as_deadline_exceeded() {
    let app = TestApp::builder()
        .env("SOCIALFLOW__GRPC_CLIENT__TIMEOUT_MS", "200")
        .spawn()
        .await;
    put_latency(&app, ServiceName::Engagement, "GetTrending", 300).await;
    let started = Instant::now();
    let response = app.get("/api/v1/videos/trending").await;
    let took = started.elapsed();
    assert_eq!(response.status(), 504);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], json!("deadline_exceeded"), "{body}");
    // The fault holds the answer 300 ms; the 504 comes at the 200 ms deadline (bounded
    // loosely here: a loaded machine may be late, and the code and metric prove the rest).
    assert!(took < Duration::from_secs(2), "took {took:?}");
    support::wait_for_metric(
        &app,
        r#"grpc_client_handled_total{grpc_method="GetTrending",grpc_code="DeadlineExceeded"}"#,
        1.0,
    )
    .await;
    assert_eq!(
        support::metric(
            &app,
            r#"grpc_client_handled_total{grpc_method="GetTrending",grpc_code="Unavailable"}"#
        )
        .await,
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_gives_its_own_calls_no_more_than_is_left_of_its_callers_deadline() {
    // The gateway waits 600 ms for video-service; video-service may wait that long for
    // counts too, but engagement-service is 900 ms slow. Cut to what is left of the 600 ms,
    // less its margin (a tenth of what is left, at most 50 ms), the counts call gives up in
    // time for the video to come back without them.
    let app = TestApp::builder()
        .env("SOCIALFLOW__GRPC_CLIENT__TIMEOUT_MS", "600")
        .spawn()
        .await;
    let video = app.insert_video("Budget", "ready").await;
    put_latency(&app, ServiceName::Engagement, "GetVideoStats", 900).await;
    let started = Instant::now();
    let response = app.get(&format!("/api/v1/videos/{video}")).await;
    let took = started.elapsed();
    assert_eq!(response.status(), 200, "the video, without its counts");
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["stats"], Value::Null, "{body}");
    // Without the cut, video-service would wait the 900 ms and the gateway answer 504.
    assert!(took < Duration::from_secs(2), "took {took:?}");
    support::wait_for_metric(
        &app,
        r#"grpc_client_handled_total{grpc_method="GetVideoStats",grpc_code="DeadlineExceeded"}"#,
        1.0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistently_slow_dependency_opens_its_breaker_and_answers_fail_fast() {
    let app = TestApp::builder()
        .env("SOCIALFLOW__GRPC_CLIENT__TIMEOUT_MS", "200")
        .env("SOCIALFLOW__GRPC_CLIENT__BREAKER__OPEN_MS", "1000")
        .spawn()
        .await;
    put_latency(&app, ServiceName::Engagement, "GetTrending", 300).await;
    // Ten calls time out (the breaker needs ten outcomes, half of them failures)...
    for _ in 0..10 {
        let response = app.get("/api/v1/videos/trending").await;
        assert_eq!(response.status(), 504);
    }
    // ...then the breaker is open: answers come at once, naming the dependency.
    let started = Instant::now();
    let response = app.get("/api/v1/videos/trending").await;
    let took = started.elapsed();
    assert_eq!(response.status(), 503);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=1).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(
        body["error"]["code"],
        json!("dependency_unavailable"),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("engagement-service")),
        "{body}"
    );
    assert!(
        took < Duration::from_millis(100),
        "fail fast, took {took:?}"
    );
    // Failing fast means not calling: while open, engagement-service sees none of them.
    let handled = r#"grpc_server_handled_total{grpc_service="socialflow.engagement.v1.EngagementService",grpc_method="GetTrending"}"#;
    let before = support::metric(&app, handled).await;
    let mut answered_in = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let response = app.get("/api/v1/videos/trending").await;
        answered_in.push(started.elapsed());
        assert_eq!(response.status(), 503);
    }
    assert_eq!(
        support::metric(&app, handled).await,
        before,
        "an open breaker calls nothing"
    );
    answered_in.sort();
    eprintln!(
        "fail-fast answers: p50 {:?}, max {:?}",
        answered_in[10], answered_in[19]
    );
    assert_eq!(
        support::metric(
            &app,
            r#"circuit_breaker_state{upstream="engagement-service"}"#
        )
        .await,
        2.0
    );
    assert!(
        support::metric(
            &app,
            r#"circuit_breaker_rejections_total{upstream="engagement-service"}"#
        )
        .await
            >= 1.0
    );

    // The fault goes; after the pause one probe goes through, and its success closes it.
    let cleared = app
        .http
        .delete(format!(
            "{}/admin/faults/GetTrending",
            app.admin_url(ServiceName::Engagement)
        ))
        .send()
        .await
        .expect("admin answers");
    assert!(cleared.status().is_success());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(app.get("/api/v1/videos/trending").await.status(), 200);
    assert_eq!(
        support::metric(
            &app,
            r#"circuit_breaker_state{upstream="engagement-service"}"#
        )
        .await,
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_in_flight_limit_requests_are_shed_fast_with_retry_after() {
    let app = TestApp::builder()
        .env("SOCIALFLOW__HTTP__MAX_IN_FLIGHT", "3")
        .spawn()
        .await;
    let video = app.insert_video("Busy", "ready").await;
    put_latency(&app, ServiceName::Video, "GetVideo", 600).await;
    let path = format!("/api/v1/videos/{video}");
    let calls = (0..12).map(|_| async {
        let started = Instant::now();
        let response = app.get(&path).await;
        let status = response.status().as_u16();
        let retry_after = response.headers().get("retry-after").cloned();
        let body: Value = response.json().await.expect("JSON");
        (status, retry_after, body, started.elapsed())
    });
    // Health answers while the gateway is full.
    let (answers, health) = tokio::join!(futures::future::join_all(calls), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        app.get("/health").await.status()
    });
    assert_eq!(health, 200);
    let served = answers.iter().filter(|a| a.0 == 200).count();
    let shed: Vec<_> = answers.iter().filter(|a| a.0 == 503).collect();
    assert_eq!(served + shed.len(), 12, "only 200s and 503s: {answers:?}");
    assert!(served >= 3, "the first three are served: {served}");
    assert!(!shed.is_empty(), "the rest are shed");
    for (_, retry_after, body, took) in &shed {
        assert_eq!(retry_after.as_ref().map(|v| v.as_bytes()), Some(&b"1"[..]));
        assert_eq!(body["error"]["code"], json!("overloaded"), "{body}");
        assert!(
            *took < Duration::from_millis(500),
            "shed before the slow call: {took:?}"
        );
    }
    assert_eq!(
        support::metric(
            &app,
            r#"http_requests_shed_total{endpoint="/api/v1/videos/{id}"}"#
        )
        .await,
        shed.len() as f64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_unreachable_rate_limits_still_limit_and_reads_keep_working() {
    let app = TestApp::builder()
        .env("SOCIALFLOW__RATE_LIMIT__ANONYMOUS__PER_MINUTE", "6")
        .env("SOCIALFLOW__RATE_LIMIT__ANONYMOUS__BURST", "5")
        .spawn()
        .await;
    app.redis_proxy.stop();
    let video = app.insert_video("Still here", "ready").await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let response = app.get(&format!("/api/v1/videos/{video}")).await;
        statuses.push(response.status().as_u16());
    }
    assert_eq!(
        &statuses[..5],
        &[200; 5],
        "reads work without Redis: {statuses:?}"
    );
    assert!(
        statuses[5..].iter().all(|s| *s == 429),
        "and are still limited: {statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_sheds_calls_over_its_per_connection_limit_and_the_gateway_answers_503() {
    let app = TestApp::builder()
        .env("SOCIALFLOW__SERVER__GRPC_CONCURRENCY_PER_CONNECTION", "2")
        .spawn()
        .await;
    let video = app.insert_video("Crowded", "ready").await;
    put_latency(&app, ServiceName::Video, "GetVideo", 500).await;
    let path = format!("/api/v1/videos/{video}");
    let calls = (0..8).map(|_| async {
        let started = Instant::now();
        let response = app.get(&path).await;
        let status = response.status().as_u16();
        let retry_after = response.headers().get("retry-after").cloned();
        let body: Value = response.json().await.expect("JSON");
        (status, retry_after, body, started.elapsed())
    });
    let answers = futures::future::join_all(calls).await;
    let shed: Vec<_> = answers.iter().filter(|a| a.0 == 503).collect();
    assert!(
        answers.iter().all(|a| a.0 == 200 || a.0 == 503),
        "{answers:?}"
    );
    assert!(
        answers.iter().filter(|a| a.0 == 200).count() >= 2,
        "{answers:?}"
    );
    assert!(
        !shed.is_empty(),
        "calls over the limit are shed: {answers:?}"
    );
    for (_, retry_after, body, took) in &shed {
        assert_eq!(body["error"]["code"], json!("overloaded"), "{body}");
        assert!(retry_after.is_some(), "with Retry-After");
        assert!(
            *took < Duration::from_millis(450),
            "shed, not queued: {took:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_reads_are_retried_within_a_ten_percent_budget() {
    let app = TestApp::builder()
        .env("SOCIALFLOW__GRPC_CLIENT__BREAKER__MIN_CALLS", "100000")
        // Every read must reach video-service: the gateway's cache would answer most.
        .env("SOCIALFLOW__CACHE__VIDEO_TTL_MS", "0")
        .spawn()
        .await;
    let video = app.insert_video("Flaky", "ready").await;
    put_unavailable(&app, ServiceName::Video, "GetVideo").await;
    let calls = 100;
    let mut ok = 0;
    for _ in 0..calls {
        let status = app.get(&format!("/api/v1/videos/{video}")).await.status();
        assert!(status == 200 || status == 503, "{status}");
        ok += usize::from(status == 200);
    }
    let exposition = support::metrics(&app).await;
    let attempts = support::metric_value(
        &exposition,
        r#"grpc_client_handled_total{grpc_service="socialflow.video.v1.VideoService",grpc_method="GetVideo"}"#,
    );
    let retried = support::metric_value(
        &exposition,
        r#"grpc_client_retries_total{upstream="video-service",outcome="retried"}"#,
    );
    let refused = support::metric_value(
        &exposition,
        r#"grpc_client_retries_total{upstream="video-service",outcome="budget_exhausted"}"#,
    );
    assert!(retried >= 1.0, "some reads were retried");
    assert!(refused >= 1.0, "and the budget stopped the rest");
    assert_eq!(
        attempts,
        calls as f64 + retried,
        "each retry is one more attempt"
    );
    assert!(
        retried <= calls as f64 * 0.1,
        "extra attempts ≤ 10%: {retried}"
    );
    assert!(ok >= 60, "most reads answered: {ok}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_retries_its_unavailable_reads_of_another_within_the_budget() {
    let app = TestApp::builder()
        .env("SOCIALFLOW__GRPC_CLIENT__BREAKER__MIN_CALLS", "100000")
        // Every read must reach video-service: the gateway's cache would answer most.
        .env("SOCIALFLOW__CACHE__VIDEO_TTL_MS", "0")
        .spawn()
        .await;
    let video = app.insert_video("Counted", "ready").await;
    // video-service asks engagement-service for the counts of every video it serves.
    put_unavailable(&app, ServiceName::Engagement, "GetVideoStats").await;
    let calls = 100;
    let mut counted = 0;
    for _ in 0..calls {
        let response = app.get(&format!("/api/v1/videos/{video}")).await;
        assert_eq!(response.status(), 200, "counts missing never fail the read");
        let body: Value = response.json().await.expect("JSON");
        counted += usize::from(body["stats"].is_object());
    }
    let exposition = support::metrics(&app).await;
    let retried = support::metric_value(
        &exposition,
        r#"grpc_client_retries_total{upstream="engagement-service",outcome="retried"}"#,
    );
    let attempts = support::metric_value(
        &exposition,
        r#"grpc_client_handled_total{grpc_service="socialflow.engagement.v1.EngagementService",grpc_method="GetVideoStats"}"#,
    );
    assert!(retried >= 1.0, "video-service retried some reads");
    assert!(
        retried <= calls as f64 * 0.1,
        "extra attempts ≤ 10%: {retried}"
    );
    assert_eq!(
        attempts,
        calls as f64 + retried,
        "each retry is one more attempt"
    );
    assert!(counted >= 60, "most reads had their counts: {counted}");
}

/// Redis unreachable for 30 s under load: reads and logins keep working, rate limiting
/// keeps limiting (in process), and the gateway is back on Redis within 5 s of its return.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_seconds_without_redis_under_load_and_back_within_five() {
    let app = TestApp::spawn().await;
    let account = support::register(&app, &format!("redisless{}", testkit::unique_suffix())).await;
    let video = app.insert_video("Always", "ready").await;
    app.redis_proxy.cut();
    let started = Instant::now();
    let (mut reads, mut failures) = (0u32, Vec::new());
    while started.elapsed() < Duration::from_secs(30) {
        let status = app.get(&format!("/api/v1/videos/{video}")).await.status();
        reads += 1;
        if status != 200 {
            failures.push(status.as_u16());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        failures.is_empty(),
        "reads failed without Redis: {failures:?}"
    );
    assert!(reads > 100, "{reads} reads");
    let login = support::try_login(&app, &account.username, &account.password).await;
    assert_eq!(login.status(), 200, "logins work without Redis");

    app.redis_proxy.restore();
    let back = Instant::now();
    loop {
        let response = app
            .admin_get(ServiceName::Gateway, "/health/detailed")
            .await;
        let body: Value = response.json().await.expect("JSON");
        if body["checks"]["redis"]["status"] == json!("healthy") {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "not back on Redis within 5 s: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Postgres drops every connection (a restart, a failover): the pool hands out no dead
/// connection (it drops closed ones), so reads go on; a query whose connection dies under
/// it would answer 503, never 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_database_connections_fail_no_read_and_the_pool_heals() {
    let app = TestApp::spawn().await;
    let video = app.insert_video("Survivor", "ready").await;
    let path = format!("/api/v1/videos/{video}");
    for _ in 0..5 {
        assert_eq!(app.get(&path).await.status(), 200);
    }
    let killed: i64 = app
        .db
        .connect()
        .await
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&app.db.name()],
        )
        .await
        .expect("terminate")
        .get(0);
    assert!(killed > 0, "the services' pooled connections were killed");
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let response = app.get(&path).await;
        let status = response.status().as_u16();
        if status != 200 {
            let body: Value = response.json().await.expect("JSON");
            assert_eq!(status, 503, "{body}");
        }
        statuses.push(status);
    }
    assert!(!statuses.contains(&500), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&200), "the pool healed: {statuses:?}");
    assert!(
        statuses.iter().rev().take(3).all(|s| *s == 200),
        "{statuses:?}"
    );
}
