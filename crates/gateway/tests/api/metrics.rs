use testkit::{ServiceName, TestApp};

use crate::support::promtool_check;

fn looks_like_uuid(value: &str) -> bool {
    value.len() >= 32
        && value.split('-').count() == 5
        && value.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_process_exposes_valid_red_metrics_with_route_templates_and_buckets() {
    let app = TestApp::spawn().await;
    let id = app.insert_video("Metered", "ready").await;
    assert_eq!(app.get(&format!("/api/v1/videos/{id}")).await.status(), 200);
    assert_eq!(
        app.get(&format!("/api/v1/videos/{}", uuid::Uuid::new_v4()))
            .await
            .status(),
        404
    );
    assert_eq!(app.get("/no/such/route/5d0a4b1e").await.status(), 404);
    assert_eq!(app.get("/api/v1/subscriptions/plans").await.status(), 200);

    // In one test process every admin port renders the same registry: each must serve it,
    // valid for promtool, and the series are checked once. scripts/smoke-run.sh checks each
    // real process's own /metrics.
    let mut bodies = Vec::new();
    for name in ServiceName::ALL {
        let response = app.admin_get(name, "/metrics").await;
        assert_eq!(response.status(), 200, "{name:?}");
        let text = response.text().await.expect("metrics body");
        promtool_check(&text);
        bodies.push(text);
    }
    let text = &bodies[0];
    for service in [
        "gateway",
        "user-service",
        "video-service",
        "engagement-service",
        "payments-service",
    ] {
        assert!(
            text.contains(&format!("socialflow_build_info{{service=\"{service}\"")),
            "{service} recorded its build info"
        );
    }
    {
        // Route templates, never raw paths or ids, in every label.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            if let Some(labels) = line
                .split_once('{')
                .and_then(|(_, rest)| rest.split_once('}'))
                .map(|(l, _)| l)
            {
                for pair in labels.split("\",") {
                    let value = pair
                        .split_once("=\"")
                        .map_or("", |(_, v)| v.trim_end_matches('"'));
                    assert!(
                        !looks_like_uuid(value),
                        "an id became a label value: {line}"
                    );
                    assert!(
                        !value.contains("5d0a4b1e"),
                        "a raw path became a label value: {line}"
                    );
                }
            }
        }

        let expected = [
            r#"http_requests_total{method="GET",endpoint="/api/v1/videos/{id}",status_code="200"}"#,
            r#"http_requests_total{method="GET",endpoint="/api/v1/videos/{id}",status_code="404"}"#,
            r#"http_requests_total{method="GET",endpoint="unmatched",status_code="404"}"#,
            r#"http_request_duration_seconds_bucket{method="GET",endpoint="/api/v1/videos/{id}",le="0.1"}"#,
            r#"errors_total{error_type="not_found",endpoint="/api/v1/videos/{id}"}"#,
            r#"grpc_server_handled_total{grpc_service="socialflow.video.v1.VideoService",grpc_method="GetVideo",grpc_code="OK"}"#,
            r#"grpc_server_handled_total{grpc_service="socialflow.video.v1.VideoService",grpc_method="GetVideo",grpc_code="NotFound"}"#,
            r#"grpc_server_handled_total{grpc_service="socialflow.engagement.v1.EngagementService",grpc_method="GetVideoStats",grpc_code="OK"}"#,
            r#"grpc_client_handled_total{grpc_service="socialflow.engagement.v1.EngagementService",grpc_method="GetVideoStats",grpc_code="OK"}"#,
            r#"grpc_server_handling_seconds_bucket{grpc_service="socialflow.payments.v1.PaymentsService",grpc_method="ListPlans",grpc_code="OK",le="0.1"}"#,
            r#"grpc_client_handling_seconds_bucket{grpc_service="socialflow.video.v1.VideoService",grpc_method="GetVideo",grpc_code="OK",le="+Inf"}"#,
        ];
        for series in expected {
            assert!(text.contains(series), "missing {series}\n{text}");
        }
        assert!(
            !text.contains("quantile="),
            "histograms must not render as summaries"
        );
    }
}
