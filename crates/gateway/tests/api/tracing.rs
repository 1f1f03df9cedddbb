use std::time::Duration;

use testkit::{CapturedSpan, TestApp};

fn find<'a>(spans: &'a [CapturedSpan], name: &str, kind: i32) -> &'a CapturedSpan {
    spans
        .iter()
        .find(|s| s.name == name && s.kind == kind)
        .unwrap_or_else(|| {
            let seen: Vec<_> = spans.iter().map(|s| (&s.name, s.kind)).collect();
            panic!("no span {name} of kind {kind}; trace has {seen:?}")
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_follows_a_video_request_through_gateway_video_and_engagement() {
    // Continuing a client's trace is opt-in (a trusted client, e.g. our own front end).
    let app = TestApp::builder()
        .env("SOCIALFLOW__TELEMETRY__TRUST_CLIENT_TRACE", "true")
        .spawn()
        .await;
    let video_id = app.insert_video("Traced", "ready").await;
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let client_span = "00f067aa0ba902b7";

    let response = app
        .http
        .get(format!("{}/api/v1/videos/{video_id}", app.gateway_url()))
        .header("traceparent", format!("00-{trace_id}-{client_span}-01"))
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(response.status(), 200);

    let telemetry = testkit::telemetry();
    let spans = telemetry
        .wait_for_spans(Duration::from_secs(15), |spans| {
            spans
                .iter()
                .any(|s| s.trace_id == trace_id && s.name == "SELECT engagement.video_stats")
                && spans
                    .iter()
                    .any(|s| s.trace_id == trace_id && s.name == "GET /api/v1/videos/{id}")
        })
        .await;
    let trace: Vec<CapturedSpan> = spans
        .into_iter()
        .filter(|s| s.trace_id == trace_id)
        .collect();

    // gateway: server span continues the client's trace, under the client's span.
    let gateway = find(&trace, "GET /api/v1/videos/{id}", CapturedSpan::SERVER);
    assert_eq!(gateway.parent_span_id, client_span);
    assert_eq!(gateway.attr("http.route"), Some("/api/v1/videos/{id}"));
    assert_eq!(gateway.attr("http.request.method"), Some("GET"));
    assert_eq!(gateway.attr("http.response.status_code"), Some("200"));

    // gateway → video-service
    let to_video = find(
        &trace,
        "socialflow.video.v1.VideoService/GetVideo",
        CapturedSpan::CLIENT,
    );
    assert_eq!(to_video.parent_span_id, gateway.span_id);
    let video = find(
        &trace,
        "socialflow.video.v1.VideoService/GetVideo",
        CapturedSpan::SERVER,
    );
    assert_eq!(
        video.parent_span_id, to_video.span_id,
        "server span is a child of the caller's client span"
    );
    assert_eq!(video.attr("rpc.system"), Some("grpc"));
    assert_eq!(
        video.attr("rpc.service"),
        Some("socialflow.video.v1.VideoService")
    );
    assert_eq!(video.attr("rpc.method"), Some("GetVideo"));
    assert_eq!(video.attr("rpc.grpc.status_code"), Some("0"));

    // video-service → engagement-service
    let name = "socialflow.engagement.v1.EngagementService/GetVideoStats";
    let to_engagement = find(&trace, name, CapturedSpan::CLIENT);
    assert_eq!(to_engagement.parent_span_id, video.span_id);
    let engagement = find(&trace, name, CapturedSpan::SERVER);
    assert_eq!(engagement.parent_span_id, to_engagement.span_id);

    // database spans under each service's span
    let video_query = find(&trace, "SELECT videos.videos", CapturedSpan::CLIENT);
    assert_eq!(video_query.parent_span_id, video.span_id);
    assert_eq!(video_query.attr("db.system"), Some("postgresql"));
    let stats_query = find(
        &trace,
        "SELECT engagement.video_stats",
        CapturedSpan::CLIENT,
    );
    assert_eq!(stats_query.parent_span_id, engagement.span_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_a_client_traceparent_is_only_linked_and_starts_no_trace_of_ours() {
    let app = TestApp::spawn().await;
    let video_id = app.insert_video("Linked", "ready").await;
    let client_trace = uuid::Uuid::new_v4().simple().to_string();
    let client_span = "00f067aa0ba902b7";
    let response = app
        .http
        .get(format!("{}/api/v1/videos/{video_id}", app.gateway_url()))
        .header("traceparent", format!("00-{client_trace}-{client_span}-01"))
        .header("baggage", "tenant=acme,session=stolen")
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(response.status(), 200);

    let link = (client_trace.clone(), client_span.to_owned());
    let spans = testkit::telemetry()
        .wait_for_spans(Duration::from_secs(15), |spans| {
            spans.iter().any(|s| s.links.contains(&link))
        })
        .await;
    let gateway = spans
        .iter()
        .find(|s| s.links.contains(&link))
        .expect("the gateway's span links the client's context");
    assert_eq!(gateway.name, "GET /api/v1/videos/{id}");
    assert_ne!(gateway.trace_id, client_trace, "a trace of our own");
    assert!(
        gateway.parent_span_id.is_empty(),
        "a root span: {gateway:?}"
    );
    assert!(
        spans.iter().all(|s| s.trace_id != client_trace),
        "nothing joins the client's trace"
    );
    // The services' spans are in the gateway's trace.
    assert!(spans.iter().any(|s| s.trace_id == gateway.trace_id
        && s.name == "socialflow.video.v1.VideoService/GetVideo"
        && s.kind == CapturedSpan::SERVER));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_traceparent_starts_a_new_trace_and_failed_rpcs_are_marked() {
    let app = TestApp::spawn().await;
    let missing = uuid::Uuid::new_v4();
    let response = app.get(&format!("/api/v1/videos/{missing}")).await;
    assert_eq!(response.status(), 404);

    let telemetry = testkit::telemetry();
    let spans = telemetry
        .wait_for_spans(Duration::from_secs(15), |spans| {
            spans.iter().any(|s| {
                s.kind == CapturedSpan::CLIENT
                    && s.name == "socialflow.video.v1.VideoService/GetVideo"
                    && s.attr("rpc.grpc.status_code") == Some("5")
            })
        })
        .await;
    let client = spans
        .iter()
        .find(|s| {
            s.kind == CapturedSpan::CLIENT
                && s.name == "socialflow.video.v1.VideoService/GetVideo"
                && s.attr("rpc.grpc.status_code") == Some("5")
        })
        .expect("client span of the failed call");
    assert_eq!(
        client.status_code, 2,
        "a NOT_FOUND answer is an error for the client span"
    );
    let server = spans
        .iter()
        .find(|s| s.kind == CapturedSpan::SERVER && s.parent_span_id == client.span_id)
        .expect("server span of the failed call");
    assert_ne!(server.status_code, 2, "NOT_FOUND is not a server failure");
    let root = spans
        .iter()
        .find(|s| s.span_id == client.parent_span_id)
        .expect("gateway span");
    assert!(
        root.parent_span_id.is_empty(),
        "no traceparent: the gateway span is the root"
    );
}
