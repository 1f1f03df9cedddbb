use serde_json::{Value, json};
use testkit::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_comes_with_its_counts_from_engagement_service() {
    let app = TestApp::spawn().await;
    let id = app.insert_video("Sunset timelapse", "ready").await;
    app.set_video_stats(id, 1200, 85).await;

    let response = app.get(&format!("/api/v1/videos/{id}")).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["id"], id.to_string());
    assert_eq!(body["title"], "Sunset timelapse");
    assert_eq!(body["duration_seconds"], 42);
    assert_eq!(
        body["stats"],
        json!({ "views": 1200, "likes": 85, "comments": 0 })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_video_is_a_json_404() {
    let app = TestApp::spawn().await;
    let response = app
        .get(&format!("/api/v1/videos/{}", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(response.status(), 404);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(body["error"]["request_id"], request_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_pages_through_published_videos_newest_first() {
    let app = TestApp::spawn().await;
    let mut published = Vec::new();
    for i in 0..5 {
        published.push(app.insert_video(&format!("video {i}"), "ready").await);
    }
    app.insert_video("still processing", "processing").await;

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/videos?limit=2&cursor={c}"),
            None => "/api/v1/videos?limit=2".to_owned(),
        };
        let response = app.get(&path).await;
        assert_eq!(response.status(), 200);
        let page: Value = response.json().await.expect("json");
        let videos = page["videos"].as_array().expect("videos array");
        assert!(videos.len() <= 2);
        seen.extend(
            videos
                .iter()
                .map(|v| v["id"].as_str().expect("id").to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    // All five published ones, none twice, the processing one never; inserted in order, so
    // newest first means reverse insertion order.
    let expected: Vec<String> = published.iter().rev().map(ToString::to_string).collect();
    assert_eq!(seen, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_register_and_their_public_profile_is_read_back() {
    let app = TestApp::spawn().await;
    let response = app
        .post_json(
            "/api/v1/auth/register",
            &json!({ "email": "ann@example.com", "username": "ann_lee", "password": "a long passphrase 42", "display_name": "Ann Lee" }),
        )
        .await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.expect("json");
    let id = created["id"].as_str().expect("id");

    let response = app.get(&format!("/api/v1/users/{id}")).await;
    assert_eq!(response.status(), 200);
    let read: Value = response.json().await.expect("json");
    assert_eq!(read["username"], "ann_lee");
    assert_eq!(read["followers_count"], 0);
    assert!(
        read.get("email").is_none(),
        "the public profile has no email: {read}"
    );

    let again = app
        .post_json(
            "/api/v1/auth/register",
            &json!({ "email": "ANN@example.com", "username": "other", "password": "a long passphrase 42", "display_name": "Other" }),
        )
        .await;
    assert_eq!(again.status(), 409);
    let body: Value = again.json().await.expect("json");
    assert_eq!(body["error"]["code"], "already_exists");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("email")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_plans_come_from_payments_service_cheapest_first() {
    let app = TestApp::spawn().await;
    let response = app.get("/api/v1/subscriptions/plans").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    let ids: Vec<&str> = body["plans"]
        .as_array()
        .expect("plans")
        .iter()
        .map(|p| p["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["free", "basic", "premium", "premium_annual"]);
    assert_eq!(body["plans"][1]["price_cents"], 499);
    assert_eq!(body["plans"][1]["currency"], "USD");
}
