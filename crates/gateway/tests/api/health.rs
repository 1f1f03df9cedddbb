use serde_json::Value;
use testkit::{ServiceName, TestApp};

const DEPENDENCIES: [&str; 7] = [
    "database",
    "redis",
    "s3",
    "user-service",
    "video-service",
    "engagement-service",
    "payments-service",
];

async fn detailed(app: &TestApp) -> (u16, Value) {
    let response = app.get("/health/detailed").await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("json body"))
}

fn unhealthy(body: &Value) -> Vec<String> {
    body["checks"]
        .as_object()
        .expect("checks")
        .iter()
        .filter(|(_, c)| c["status"] != "healthy")
        .map(|(name, _)| name.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detailed_health_is_200_with_every_dependency_healthy_when_all_are_up() {
    let app = TestApp::spawn().await;
    let (status, body) = detailed(&app).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["service"], "gateway");
    for name in DEPENDENCIES {
        let check = &body["checks"][name];
        assert_eq!(check["status"], "healthy", "{name}: {body}");
        assert!(
            check["response_time"].as_f64().is_some_and(|t| t >= 0.0),
            "{name}: {body}"
        );
    }
    for (path, expected) in [
        ("/health", "healthy"),
        ("/health/liveness", "alive"),
        ("/health/readiness", "ready"),
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["status"], expected, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detailed_health_names_redis_when_it_is_unreachable() {
    let app = TestApp::spawn().await;
    app.redis_proxy.stop();
    let (status, body) = detailed(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(unhealthy(&body), ["redis"], "{body}");
    assert!(body["checks"]["redis"]["error"].is_string());
    // Liveness never depends on anything.
    assert_eq!(app.get("/health/liveness").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detailed_health_names_s3_when_the_store_is_down() {
    let mut app = TestApp::spawn().await;
    app.s3.stop().await;
    let (status, body) = detailed(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(unhealthy(&body), ["s3"], "{body}");
    // video-service, which owns the bucket, sees it too.
    let video = app.admin_get(ServiceName::Video, "/health/detailed").await;
    assert_eq!(video.status(), 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detailed_health_names_a_stopped_service() {
    let mut app = TestApp::spawn().await;
    app.stop_service(ServiceName::Engagement)
        .await
        .expect("engagement-service stops cleanly");
    let (status, body) = detailed(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(unhealthy(&body), ["engagement-service"], "{body}");

    // A video is still served, without its counts.
    let id = app.insert_video("Counts unavailable", "published").await;
    let response = app.get(&format!("/api/v1/videos/{id}")).await;
    assert_eq!(response.status(), 200);
    let video: Value = response.json().await.expect("json");
    assert_eq!(video["stats"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_has_liveness_readiness_and_detailed_health_on_its_admin_port() {
    let app = TestApp::spawn().await;
    for name in ServiceName::ALL {
        for path in ["/health/liveness", "/health/readiness", "/health/detailed"] {
            let response = app.admin_get(name, path).await;
            assert_eq!(response.status(), 200, "{name:?} {path}");
        }
    }
}
