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

/// The admin port's full report.
async fn admin_detailed(app: &TestApp) -> Value {
    app.admin_get(ServiceName::Gateway, "/health/detailed")
        .await
        .json()
        .await
        .expect("json")
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
        assert_eq!(body["checks"][name]["status"], "healthy", "{name}: {body}");
    }
    // The admin port's report also times every probe.
    let admin = admin_detailed(&app).await;
    for name in DEPENDENCIES {
        let check = &admin["checks"][name];
        assert_eq!(check["status"], "healthy", "{name}: {admin}");
        assert!(
            check["response_time"].as_f64().is_some_and(|t| t >= 0.0),
            "{name}: {admin}"
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
    // Why, only on the admin port: the public report says which, not what went wrong.
    assert!(body["checks"]["redis"].get("error").is_none(), "{body}");
    let admin = admin_detailed(&app).await;
    assert!(admin["checks"]["redis"]["error"].is_string(), "{admin}");
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
    let id = app.insert_video("Counts unavailable", "ready").await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_detailed_health_tells_statuses_only_and_probes_at_most_once_a_second() {
    let app = TestApp::spawn().await;
    app.redis_proxy.stop();
    let (status, first) = detailed(&app).await;
    assert_eq!(status, 503, "{first}");
    for (name, check) in first["checks"].as_object().expect("checks") {
        let keys: Vec<&String> = check.as_object().expect("check").keys().collect();
        assert_eq!(
            keys,
            ["status"],
            "{name}: only its status is public: {first}"
        );
    }
    let text = first.to_string().to_lowercase();
    for leak in ["error", "refused", "timeout", "127.0.0.1", "response_time"] {
        assert!(
            !text.contains(leak),
            "`{leak}` in the public report: {first}"
        );
    }
    // A burst of calls is answered from one probe run.
    let mut timestamps = Vec::new();
    for _ in 0..20 {
        let (_, body) = detailed(&app).await;
        timestamps.push(body["timestamp"].as_f64().expect("timestamp"));
    }
    timestamps.dedup();
    assert!(
        timestamps.len() <= 3,
        "20 calls within about a second ran the probes {} times",
        timestamps.len()
    );
}
