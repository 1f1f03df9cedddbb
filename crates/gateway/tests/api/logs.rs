use std::time::Duration;

use serde_json::{Value, json};
use testkit::TestApp;

const SECRET: &str = "s3cr3t-b34r3r-t0k3n-value";
const PASSWORD: &str = "p4ssphrase-that-must-never-be-logged";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_are_json_with_trace_and_request_ids_and_no_credentials() {
    let app = TestApp::spawn().await;
    let response = app
        .http
        .post(format!("{}/api/v1/auth/register", app.gateway_url()))
        .header("Authorization", format!("Bearer {SECRET}"))
        .header("Cookie", format!("session={SECRET}"))
        .header("X-Correlation-ID", "checkout-42")
        .json(&json!({ "email": "log@example.com", "username": "logger", "password": PASSWORD, "display_name": "Log" }))
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["x-correlation-id"], "checkout-42");
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();

    let telemetry = testkit::telemetry();
    // Spans too: the secret must not be in any attribute.
    let spans = telemetry
        .wait_for_spans(Duration::from_secs(15), |spans| {
            spans
                .iter()
                .any(|s| s.attr("request_id") == Some(request_id.as_str()))
        })
        .await;

    let lines = telemetry.logs.lines();
    let ours: Vec<&Value> = lines
        .iter()
        .filter(|l| l["request_id"] == request_id)
        .collect();
    let services: Vec<&str> = ours.iter().filter_map(|l| l["target"].as_str()).collect();
    assert!(
        services.iter().any(|t| t.starts_with("telemetry::http")),
        "the gateway's access log line carries the request id: {services:?}"
    );
    assert!(
        services.iter().any(|t| t.starts_with("user_service")),
        "user-service's lines carry the request id the gateway sent: {services:?}"
    );
    for line in &ours {
        for field in [
            "timestamp",
            "level",
            "service",
            "version",
            "environment",
            "message",
            "trace_id",
            "span_id",
            "correlation_id",
        ] {
            assert!(line.get(field).is_some(), "`{field}` missing from {line}");
        }
        assert_eq!(line["correlation_id"], "checkout-42");
        assert_eq!(line["trace_id"].as_str().map(str::len), Some(32), "{line}");
    }

    let text = telemetry.logs.text();
    for secret in [SECRET, PASSWORD] {
        assert!(!text.contains(secret), "{secret} leaked into a log line");
        for span in &spans {
            for (key, value) in &span.attributes {
                assert!(
                    !value.contains(secret),
                    "{secret} leaked into span attribute {key}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_changes_are_logged_as_business_events_of_the_user_they_concern() {
    let app = TestApp::spawn().await;
    let ann = crate::support::register(&app, "ann").await;
    let bob = crate::support::register(&app, "bob").await;
    let token = crate::support::access_token(&app, &ann).await;
    let follow = crate::support::authed(
        &app,
        reqwest::Method::PUT,
        &format!("/api/v1/users/{}/follow", bob.id),
        &token,
    )
    .send()
    .await
    .expect("gateway answers");
    assert_eq!(follow.status(), 204);
    for event in ["user_registered", "user_logged_in", "user_followed"] {
        let line = crate::support::wait_for_log(event, |l| {
            l["event_type"] == event && l["user_id"] == ann.id.as_str()
        })
        .await;
        assert_eq!(line["event_category"], "user", "{line}");
        assert_eq!(line["service"], "socialflow-test", "{line}");
        assert!(
            line["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("user_service")),
            "logged by user-service: {line}"
        );
    }
}

/// Garbage on the wire is the client's fault: it is logged, but never at `error`, which an
/// error-rate alert on logs would page on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_logged_as_client_faults_never_as_errors() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = TestApp::spawn().await;
    let addr = app.gateway_url().trim_start_matches("http://").to_owned();
    let garbage: [&[u8]; 4] = [
        b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"login\":",
    ];
    for bytes in garbage {
        let mut stream = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        stream.write_all(bytes).await.expect("write");
        // The last one hangs up mid-body.
        let _ = stream.shutdown().await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut answer)).await;
    }
    // The gateway still serves.
    assert_eq!(app.get("/health").await.status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let lines = testkit::telemetry().logs.lines();
    let errors: Vec<&Value> = lines
        .iter()
        .filter(|l| l["level"] == json!("error"))
        .collect();
    assert!(
        errors.is_empty(),
        "error lines for client garbage: {errors:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["client_error"] == json!(true) && l["level"] == json!("warn")),
        "the malformed request is logged as a client fault"
    );
}

/// Canary secrets sent in headers, query strings and JSON bodies, on every route and
/// every error path, never reach a log line, a span attribute or a metric label.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_secrets_on_every_route_never_reach_logs_spans_or_metrics() {
    const CANARY: &str = "c4n4ry-9f1d2e3c4b5a";
    let app = TestApp::spawn().await;
    let id = uuid::Uuid::new_v4();
    let routes: &[(&str, String)] = &[
        ("POST", "/api/v1/auth/register".into()),
        ("POST", "/api/v1/auth/login".into()),
        ("POST", "/api/v1/auth/refresh".into()),
        ("POST", "/api/v1/auth/logout".into()),
        ("GET", "/api/v1/me".into()),
        ("PATCH", "/api/v1/me".into()),
        ("DELETE", "/api/v1/me".into()),
        ("GET", "/api/v1/users/by-username/someone".into()),
        ("GET", format!("/api/v1/users/{id}")),
        ("PUT", format!("/api/v1/users/{id}/follow")),
        ("GET", format!("/api/v1/users/{id}/followers")),
        ("GET", format!("/api/v1/users/{id}/videos")),
        ("GET", format!("/api/v1/users/{id}/posts")),
        ("GET", "/api/v1/videos".into()),
        ("POST", "/api/v1/videos".into()),
        ("POST", "/api/v1/videos/uploads".into()),
        ("GET", "/api/v1/videos/trending".into()),
        ("GET", format!("/api/v1/videos/{id}")),
        ("PATCH", format!("/api/v1/videos/{id}")),
        ("POST", format!("/api/v1/videos/{id}/views")),
        ("PUT", format!("/api/v1/videos/{id}/like")),
        ("POST", format!("/api/v1/videos/{id}/comments")),
        ("GET", format!("/api/v1/videos/{id}/comments")),
        ("POST", "/api/v1/posts".into()),
        ("GET", format!("/api/v1/posts/{id}")),
        ("DELETE", format!("/api/v1/comments/{id}")),
        ("GET", "/api/v1/feed".into()),
        ("GET", "/api/v1/subscriptions/plans".into()),
        ("POST", "/api/v1/subscriptions".into()),
        ("GET", "/api/v1/me/subscription".into()),
        ("POST", "/api/v1/admin/ad-revenue".into()),
        ("GET", "/api/v1/admin/revenue".into()),
        ("POST", "/api/v1/admin/transfers".into()),
        ("GET", "/no/such/route".into()),
    ];
    let body = json!({
        "password": CANARY, "refresh_token": CANARY, "login": CANARY, "text": CANARY,
        "payment_method": CANARY, "title": CANARY, "token": CANARY,
    });
    for (method, path) in routes {
        for auth in [format!("Bearer {CANARY}"), format!("Basic {CANARY}")] {
            let response = app
                .http
                .request(
                    reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
                    format!(
                        "{}{path}?token={CANARY}&password={CANARY}",
                        app.gateway_url()
                    ),
                )
                .header("Authorization", auth)
                .header("Cookie", format!("session={CANARY}; sf_viewer={CANARY}"))
                .header("X-Api-Key", CANARY)
                .header("Idempotency-Key", CANARY)
                // (X-Correlation-ID is not here: it is the client's label for its own
                // requests, logged on purpose.)
                .json(&body)
                .send()
                .await
                .expect("gateway answers");
            assert!(
                response.status().as_u16() < 500,
                "{method} {path}: {}",
                response.status()
            );
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let telemetry = testkit::telemetry();
    telemetry.flush();
    let text = telemetry.logs.text();
    let leaks: Vec<&str> = text.lines().filter(|l| l.contains(CANARY)).collect();
    assert!(leaks.is_empty(), "a canary reached the logs: {leaks:#?}");
    let spans = telemetry
        .wait_for_spans(Duration::from_secs(5), |spans| spans.len() > 10)
        .await;
    for span in &spans {
        for (key, value) in &span.attributes {
            assert!(
                !value.contains(CANARY),
                "canary in span {} attribute {key}",
                span.name
            );
        }
        assert!(!span.name.contains(CANARY));
    }
    let metrics = crate::support::metrics(&app).await;
    assert!(!metrics.contains(CANARY), "a canary in a metric label");
}
