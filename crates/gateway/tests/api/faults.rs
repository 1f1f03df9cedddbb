use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::{ServiceName, TestApp};

use crate::support::metric_value;

const ACTIVE: &str =
    r#"fault_injection_active{service="video-service",rpc="GetVideo",kind="error"}"#;

async fn put_fault(app: &TestApp, name: ServiceName, rpc: &str, fault: Value) -> reqwest::Response {
    app.http
        .put(format!("{}/admin/faults/{rpc}", app.admin_url(name)))
        .json(&fault)
        .send()
        .await
        .expect("admin answers")
}

async fn clear_fault(app: &TestApp, name: ServiceName, rpc: &str) -> reqwest::Response {
    app.http
        .delete(format!("{}/admin/faults/{rpc}", app.admin_url(name)))
        .send()
        .await
        .expect("admin answers")
}

async fn metrics_text(app: &TestApp, name: ServiceName) -> String {
    app.admin_get(name, "/metrics")
        .await
        .text()
        .await
        .expect("metrics")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_error_fails_the_rpc_is_measured_and_is_turned_off_again() {
    let app = TestApp::spawn().await;
    let id = app.insert_video("Drill", "ready").await;

    let on = put_fault(
        &app,
        ServiceName::Video,
        "GetVideo",
        json!({ "kind": "error", "code": "UNAVAILABLE", "ratio": 1.0 }),
    )
    .await;
    assert_eq!(on.status(), 200);
    let listed: Value = app
        .admin_get(ServiceName::Video, "/admin/faults")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(listed["faults"]["GetVideo"]["kind"], "error");

    let failed = app.get(&format!("/api/v1/videos/{id}")).await;
    assert_eq!(failed.status(), 503);
    let body: Value = failed.json().await.expect("json");
    assert_eq!(body["error"]["code"], "unavailable");
    // Other RPCs of the service are untouched.
    assert_eq!(app.get("/api/v1/videos").await.status(), 200);

    let text = metrics_text(&app, ServiceName::Video).await;
    assert_eq!(metric_value(&text, ACTIVE), 1.0, "{text}");
    assert_eq!(
        metric_value(
            &text,
            r#"grpc_server_handled_total{grpc_service="socialflow.video.v1.VideoService",grpc_method="GetVideo",grpc_code="Unavailable"}"#
        ),
        1.0
    );
    assert_eq!(
        metric_value(
            &text,
            r#"http_requests_total{method="GET",endpoint="/api/v1/videos/{id}",status_code="503"}"#
        ),
        1.0
    );

    let off = clear_fault(&app, ServiceName::Video, "GetVideo").await;
    assert_eq!(off.status(), 204);
    assert_eq!(app.get(&format!("/api/v1/videos/{id}")).await.status(), 200);
    let text = metrics_text(&app, ServiceName::Video).await;
    assert!(text.contains(
        r#"fault_injection_active{service="video-service",rpc="GetVideo",kind="error"} 0"#
    ));
    assert_eq!(metric_value(&text, ACTIVE), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_latency_slows_the_rpc_down() {
    let app = TestApp::spawn().await;
    let on = put_fault(
        &app,
        ServiceName::Payments,
        "ListPlans",
        json!({ "kind": "latency", "delay_ms": 600, "ratio": 1.0 }),
    )
    .await;
    assert_eq!(on.status(), 200);
    let started = Instant::now();
    assert_eq!(app.get("/api/v1/subscriptions/plans").await.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(600));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_faults_are_refused_and_faults_are_not_reachable_through_the_gateway() {
    let app = TestApp::spawn().await;
    for (rpc, fault, needle) in [
        (
            "GetVideo",
            json!({ "kind": "error", "code": "OK", "ratio": 1.0 }),
            "code",
        ),
        (
            "GetVideo",
            json!({ "kind": "error", "code": "UNAVAILABLE", "ratio": 2.0 }),
            "ratio",
        ),
        (
            "GetVideo",
            json!({ "kind": "latency", "delay_ms": 0, "ratio": 1.0 }),
            "delay_ms",
        ),
        ("GetVideo", json!({ "kind": "explode" }), "kind"),
        (
            "Get-Video",
            json!({ "kind": "error", "code": "INTERNAL", "ratio": 1.0 }),
            "rpc",
        ),
    ] {
        let response = put_fault(&app, ServiceName::Video, rpc, fault).await;
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.expect("json");
        assert!(
            body["error"]["message"]
                .as_str()
                .expect("message")
                .contains(needle),
            "{body}"
        );
    }
    let gone = clear_fault(&app, ServiceName::Video, "GetVideo").await;
    assert_eq!(gone.status(), 404);
    // Not on the public port, and the gateway has no RPCs to break.
    assert_eq!(app.get("/admin/faults").await.status(), 404);
    assert_eq!(
        app.admin_get(ServiceName::Gateway, "/admin/faults")
            .await
            .status(),
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_injection_is_not_served_unless_turned_on() {
    let app = TestApp::builder()
        .env("SOCIALFLOW__SERVER__FAULT_INJECTION", "false")
        .spawn()
        .await;
    let response = put_fault(
        &app,
        ServiceName::Video,
        "GetVideo",
        json!({ "kind": "error", "code": "UNAVAILABLE", "ratio": 1.0 }),
    )
    .await;
    assert_eq!(response.status(), 404);
    assert_eq!(
        app.admin_get(ServiceName::Video, "/admin/faults")
            .await
            .status(),
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rpc_past_its_configured_deadline_ends_and_the_page_is_served_without_it() {
    // GetVideoStats has a 2 s deadline of its own (shared defaults); the rest keep 10 s.
    let app = TestApp::builder()
        .engagement_delay(Duration::from_secs(4))
        .spawn()
        .await;
    let video_id = app.insert_video("Late counts", "ready").await;
    app.set_video_stats(video_id, 7, 3).await;
    let response = app.get(&format!("/api/v1/videos/{video_id}")).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert!(
        body["stats"].is_null(),
        "counts that came too late are left out: {body}"
    );
    let metrics = crate::support::metrics(&app).await;
    let ended = metric_value(
        &metrics,
        r#"grpc_client_handled_total{grpc_method="GetVideoStats"}"#,
    ) - metric_value(
        &metrics,
        r#"grpc_client_handled_total{grpc_method="GetVideoStats",grpc_code="OK"}"#,
    );
    assert!(
        ended >= 1.0,
        "the call to engagement-service ended unanswered"
    );
}
