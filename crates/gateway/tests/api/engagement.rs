//! Engagement end to end: likes that equal their rows under concurrency, views that count
//! honestly and survive a Redis restart, comments, posts, the home feed (each item once,
//! one batched call per service), trending, and what deleting a video or an account
//! takes with it.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use testkit::{CapturedSpan, TestApp};
use uuid::Uuid;

use crate::support;

/// One call to the gateway: status and JSON body (`null` when there is none).
async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app
        .http
        .request(method.clone(), format!("{}{path}", app.gateway_url()));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("gateway answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{method} {path}: not JSON: {text}"))
    };
    (status, value)
}

async fn scalar(app: &TestApp, sql: &str, id: Uuid) -> i64 {
    app.db
        .connect()
        .await
        .query_one(sql, &[&id])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// Every counter in schema `engagement` equals the rows it counts: the rows that disagree.
async fn counter_mismatches(app: &TestApp) -> Vec<String> {
    let checks = [
        "SELECT 'video ' || s.video_id || ' likes ' || s.likes || ' rows ' || count(l.user_id)
         FROM engagement.video_stats s LEFT JOIN engagement.likes l
           ON l.target_type = 'video' AND l.target_id = s.video_id
         GROUP BY s.video_id, s.likes HAVING s.likes <> count(l.user_id)",
        "SELECT 'video ' || s.video_id || ' comments ' || s.comments || ' rows ' || count(c.id)
         FROM engagement.video_stats s LEFT JOIN engagement.comments c ON c.video_id = s.video_id
         GROUP BY s.video_id, s.comments HAVING s.comments <> count(c.id)",
        "SELECT 'post ' || p.id || ' likes ' || p.likes || ' rows ' || count(l.user_id)
         FROM engagement.posts p LEFT JOIN engagement.likes l
           ON l.target_type = 'post' AND l.target_id = p.id
         GROUP BY p.id, p.likes HAVING p.likes <> count(l.user_id)",
        "SELECT 'comment ' || c.id || ' likes ' || c.likes || ' rows ' || count(l.user_id)
         FROM engagement.comments c LEFT JOIN engagement.likes l
           ON l.target_type = 'comment' AND l.target_id = c.id
         GROUP BY c.id, c.likes HAVING c.likes <> count(l.user_id)",
        "SELECT 'comment ' || c.id || ' replies ' || c.replies || ' rows ' || count(r.id)
         FROM engagement.comments c LEFT JOIN engagement.comments r ON r.parent_id = c.id
         GROUP BY c.id, c.replies HAVING c.replies <> count(r.id)",
        "SELECT 'orphan like of ' || l.target_type || ' ' || l.target_id FROM engagement.likes l
         WHERE (l.target_type = 'post' AND NOT EXISTS
                  (SELECT 1 FROM engagement.posts p WHERE p.id = l.target_id))
            OR (l.target_type = 'comment' AND NOT EXISTS
                  (SELECT 1 FROM engagement.comments c WHERE c.id = l.target_id))",
    ];
    let client = app.db.connect().await;
    let mut out = Vec::new();
    for sql in checks {
        for row in client.query(sql, &[]).await.expect("invariant query") {
            out.push(row.get::<_, String>(0));
        }
    }
    out
}

/// A video's counts as the API shows them.
async fn shown_stats(app: &TestApp, video: Uuid) -> Value {
    let (status, body) = call(
        app,
        Method::GET,
        &format!("/api/v1/videos/{video}"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["stats"].clone()
}

/// Waits until the video's shown views reach `views` (the buffer is flushed every 200 ms
/// in tests).
async fn wait_for_views(app: &TestApp, video: Uuid, views: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stats = shown_stats(app, video).await;
        if stats["views"].as_u64() == Some(views) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "views never reached {views}: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_likes_and_unlikes_leave_the_count_equal_to_the_rows() {
    let app = TestApp::spawn().await;
    let owner = app
        .insert_user(&format!("own{}", testkit::unique_suffix()))
        .await;
    let video = app.insert_owned_video(owner, "ready", "public", 60).await;
    let mut tokens = Vec::new();
    for i in 0..40 {
        let user = app
            .insert_user(&format!("liker{i}x{}", testkit::unique_suffix()))
            .await;
        tokens.push(app.access_token_for(user));
    }
    let path = format!("/api/v1/videos/{video}/like");
    let calls = (0..200).map(|i| {
        let method = if i % 3 == 2 {
            Method::DELETE
        } else {
            Method::PUT
        };
        call(&app, method, &path, Some(&tokens[i % tokens.len()]), None)
    });
    for (status, body) in futures::future::join_all(calls).await {
        assert_eq!(status, 200, "{body}");
        assert!(body["likes"].is_u64(), "{body}");
    }

    let rows = scalar(
        &app,
        "SELECT count(*) FROM engagement.likes WHERE target_type = 'video' AND target_id = $1",
        video,
    )
    .await;
    assert!(rows > 0 && rows <= 40, "{rows} likes");
    assert_eq!(shown_stats(&app, video).await["likes"].as_i64(), Some(rows));
    assert_eq!(counter_mismatches(&app).await, Vec::<String>::new());

    // Idempotent both ways.
    let (_, first) = call(&app, Method::PUT, &path, Some(&tokens[0]), None).await;
    let (_, again) = call(&app, Method::PUT, &path, Some(&tokens[0]), None).await;
    assert_eq!(first, again);
    let (_, gone) = call(&app, Method::DELETE, &path, Some(&tokens[0]), None).await;
    let (_, gone_again) = call(&app, Method::DELETE, &path, Some(&tokens[0]), None).await;
    assert_eq!(gone, gone_again);
    assert_eq!(gone["liked"], json!(false));

    // Likes need a signed-in caller and a video they may see.
    let (status, _) = call(&app, Method::PUT, &path, None, None).await;
    assert_eq!(status, 401);
    let private = app.insert_owned_video(owner, "ready", "private", 60).await;
    let (status, body) = call(
        &app,
        Method::PUT,
        &format!("/api/v1/videos/{private}/like"),
        Some(&tokens[1]),
        None,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = call(
        &app,
        Method::PUT,
        "/api/v1/videos/nope/like",
        Some(&tokens[1]),
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
}

/// A Redis of this test's own, so it can be restarted (the machine's is shared).
struct OwnRedis {
    port: u16,
    child: Child,
}

impl OwnRedis {
    fn start_on(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (apt-get install redis-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { port, child }
    }

    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        Self::start_on(port)
    }

    /// SIGKILL: whatever it held is lost, as in a crash without persistence.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_count_once_per_viewer_after_the_minimum_and_survive_a_redis_restart() {
    let mut redis = OwnRedis::start();
    let app = TestApp::builder()
        .env("SOCIALFLOW__REDIS__URL", &redis.url())
        .spawn()
        .await;
    let owner = app
        .insert_user(&format!("own{}", testkit::unique_suffix()))
        .await;
    let video = app.insert_owned_video(owner, "ready", "public", 60).await;
    let views = format!("{}/api/v1/videos/{video}/views", app.gateway_url());

    // One anonymous viewer ten times: the first answer gives it a cookie it keeps.
    let first = app
        .http
        .post(&views)
        .json(&json!({ "watch_seconds": 10.0 }))
        .send()
        .await
        .expect("answer");
    assert_eq!(first.status(), 200);
    let cookie = first
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a viewer cookie")
        .to_owned();
    assert!(cookie.starts_with("sf_viewer="), "{cookie}");
    let body: Value = first.json().await.expect("json");
    assert_eq!(body["counted"], json!(true), "{body}");
    for _ in 0..9 {
        let response = app
            .http
            .post(&views)
            .header("cookie", &cookie)
            .json(&json!({ "watch_seconds": 30.0 }))
            .send()
            .await
            .expect("answer");
        assert!(
            response.headers().get("set-cookie").is_none(),
            "the cookie is kept"
        );
        let body: Value = response.json().await.expect("json");
        assert_eq!(body, json!({ "counted": false, "reason": "duplicate" }));
    }
    // A forged cookie is no viewer of ours: it is replaced.
    let forged = app
        .http
        .post(&views)
        .header(
            "cookie",
            format!("sf_viewer={}.{}", "a".repeat(32), "b".repeat(32)),
        )
        .json(&json!({ "watch_seconds": 10.0 }))
        .send()
        .await
        .expect("answer");
    assert!(forged.headers().get("set-cookie").is_some());

    // Ten signed-in viewers, each reporting twice: ten views.
    for i in 0..10 {
        let user = app
            .insert_user(&format!("viewer{i}x{}", testkit::unique_suffix()))
            .await;
        let token = app.access_token_for(user);
        for expected in [true, false] {
            let (status, body) = call(
                &app,
                Method::POST,
                &format!("/api/v1/videos/{video}/views"),
                Some(&token),
                Some(json!({ "watch_seconds": 5 })),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["counted"], json!(expected), "{body}");
        }
    }
    // One second is not a view; a later report of the same viewer with enough is.
    let user = app
        .insert_user(&format!("brief{}", testkit::unique_suffix()))
        .await;
    let token = app.access_token_for(user);
    let path = format!("/api/v1/videos/{video}/views");
    let (_, body) = call(
        &app,
        Method::POST,
        &path,
        Some(&token),
        Some(json!({ "watch_seconds": 1 })),
    )
    .await;
    assert_eq!(body, json!({ "counted": false, "reason": "too_short" }));
    // Nonsense watch times are refused, not counted.
    for bad in [
        json!({ "watch_seconds": -1 }),
        json!({ "watch_seconds": "lots" }),
        json!({}),
    ] {
        let (status, body) = call(&app, Method::POST, &path, Some(&token), Some(bad)).await;
        assert_eq!(status, 400, "{body}");
    }
    // 1 anonymous + 1 forged-cookie viewer + 10 users.
    wait_for_views(&app, video, 12).await;

    // Redis dies and comes back empty: the flushed counts are in Postgres.
    redis.kill();
    assert_eq!(shown_stats(&app, video).await["views"].as_u64(), Some(12));
    let _redis = OwnRedis::start_on(redis.port);
    // Reconnected, views count again (the window's memory of viewers went with Redis:
    // the brief viewer now watches long enough and counts).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = call(
            &app,
            Method::POST,
            &path,
            Some(&token),
            Some(json!({ "watch_seconds": 20 })),
        )
        .await;
        if status == 200 {
            assert_eq!(body["counted"], json!(true), "{body}");
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(Instant::now() < deadline, "Redis never came back: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_for_views(&app, video, 13).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_has_every_item_once_across_pages_while_posts_arrive_in_one_batched_call_each() {
    let app = TestApp::builder()
        .env("SOCIALFLOW__TELEMETRY__TRUST_CLIENT_TRACE", "true")
        .spawn()
        .await;
    let me = app
        .insert_user(&format!("reader{}", testkit::unique_suffix()))
        .await;
    let my_token = app.access_token_for(me);
    let stranger = app
        .insert_user(&format!("stranger{}", testkit::unique_suffix()))
        .await;
    let stranger_token = app.access_token_for(stranger);
    let mut authors = Vec::new();
    for i in 0..3 {
        let author = app
            .insert_user(&format!("author{i}x{}", testkit::unique_suffix()))
            .await;
        let (status, body) = call(
            &app,
            Method::PUT,
            &format!("/api/v1/users/{author}/follow"),
            Some(&my_token),
            None,
        )
        .await;
        assert!(status == 200 || status == 204, "{status} {body}");
        authors.push((author, app.access_token_for(author)));
    }
    let mut expected: HashSet<String> = HashSet::new();
    let mut hidden: HashSet<String> = HashSet::new();
    for (author, token) in &authors {
        for n in 0..8 {
            let video = app.insert_owned_video(*author, "ready", "public", 30).await;
            expected.insert(video.to_string());
            let (status, body) = call(
                &app,
                Method::POST,
                "/api/v1/posts",
                Some(token),
                Some(json!({ "text": format!("post {n}"), "video_id": if n == 0 { Some(video.to_string()) } else { None } })),
            )
            .await;
            assert_eq!(status, 201, "{body}");
            expected.insert(body["id"].as_str().expect("post id").to_owned());
        }
        // Never in anyone else's feed: private and unfinished videos.
        hidden.insert(
            app.insert_owned_video(*author, "ready", "private", 30)
                .await
                .to_string(),
        );
        hidden.insert(
            app.insert_owned_video(*author, "processing", "public", 30)
                .await
                .to_string(),
        );
    }
    // Someone I do not follow.
    let (_, body) = call(
        &app,
        Method::POST,
        "/api/v1/posts",
        Some(&stranger_token),
        Some(json!({ "text": "not for you" })),
    )
    .await;
    hidden.insert(body["id"].as_str().expect("post id").to_owned());

    // Posts keep arriving while the reader pages.
    let writer = {
        let (url, token, http) = (app.gateway_url(), authors[0].1.clone(), app.http.clone());
        tokio::spawn(async move {
            let mut created = Vec::new();
            for n in 0..30 {
                let response = http
                    .post(format!("{url}/api/v1/posts"))
                    .bearer_auth(&token)
                    .json(&json!({ "text": format!("live {n}") }))
                    .send()
                    .await
                    .expect("answer");
                assert_eq!(response.status(), 201);
                let body: Value = response.json().await.expect("json");
                created.push(body["id"].as_str().expect("id").to_owned());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            created
        })
    };

    let trace_id = Uuid::new_v4().simple().to_string();
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut first_page = true;
    loop {
        let path = match &cursor {
            None => "/api/v1/feed?limit=7".to_owned(),
            Some(c) => format!("/api/v1/feed?limit=7&cursor={c}"),
        };
        let mut request = authed_get(&app, &path, &my_token);
        if first_page {
            request = request.header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"));
            first_page = false;
        }
        let response = request.send().await.expect("answer");
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("json");
        let items = body["items"].as_array().expect("items");
        assert!(items.len() <= 7);
        let mut previous: Option<String> = None;
        for item in items {
            let kind = item["type"].as_str().expect("type");
            let thing = &item[kind];
            let id = thing["id"].as_str().expect("id").to_owned();
            assert!(item["author"]["display_name"].is_string(), "{item}");
            if kind == "video" {
                assert_eq!(thing["status"], json!("ready"));
                assert_eq!(thing["visibility"], json!("public"));
            }
            let at = thing["created_at"].as_str().expect("created_at").to_owned();
            if let Some(p) = &previous {
                assert!(p >= &at, "newest first: {p} then {at}");
            }
            previous = Some(at);
            seen.push(id);
        }
        cursor = body["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    let live = writer.await.expect("writer");
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "an item came twice: {seen:?}");
    for id in &expected {
        assert!(unique.contains(id), "{id} never came");
    }
    for id in &hidden {
        assert!(!unique.contains(id), "{id} must not be in the feed");
    }
    for id in &seen {
        assert!(
            expected.contains(id) || live.contains(id),
            "{id} is not from whom I follow"
        );
    }
    // A bad cursor is the client's mistake.
    let response = authed_get(&app, "/api/v1/feed?cursor=garbage", &my_token)
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 400);

    // The first page's trace: gateway → engagement → one call to user-service and one to
    // video-service, however many authors and items the page has.
    let spans = testkit::telemetry()
        .wait_for_spans(Duration::from_secs(15), |spans| {
            spans.iter().any(|s| {
                s.trace_id == trace_id
                    && s.name == "socialflow.video.v1.VideoService/ListFeedVideos"
                    && s.kind == CapturedSpan::SERVER
            })
        })
        .await;
    let trace: Vec<&CapturedSpan> = spans.iter().filter(|s| s.trace_id == trace_id).collect();
    let count = |name: &str, kind: i32| {
        trace
            .iter()
            .filter(|s| s.name == name && s.kind == kind)
            .count()
    };
    assert_eq!(
        count(
            "socialflow.engagement.v1.EngagementService/GetFeed",
            CapturedSpan::CLIENT
        ),
        1
    );
    assert_eq!(
        count(
            "socialflow.engagement.v1.EngagementService/GetFeed",
            CapturedSpan::SERVER
        ),
        1
    );
    let to_users: usize = trace
        .iter()
        .filter(|s| {
            s.kind == CapturedSpan::CLIENT && s.name.starts_with("socialflow.user.v1.UserService/")
        })
        .count();
    let to_videos: usize = trace
        .iter()
        .filter(|s| {
            s.kind == CapturedSpan::CLIENT
                && s.name.starts_with("socialflow.video.v1.VideoService/")
        })
        .count();
    assert_eq!(
        to_users,
        1,
        "one batched call to user-service: {:?}",
        trace.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    assert_eq!(to_videos, 1, "one batched call to video-service");
    let feed = trace
        .iter()
        .find(|s| {
            s.name == "socialflow.engagement.v1.EngagementService/GetFeed"
                && s.kind == CapturedSpan::SERVER
        })
        .expect("engagement's span");
    for name in [
        "socialflow.user.v1.UserService/ListAllFollowing",
        "socialflow.video.v1.VideoService/ListFeedVideos",
    ] {
        let client = trace
            .iter()
            .find(|s| s.name == name && s.kind == CapturedSpan::CLIENT)
            .unwrap_or_else(|| panic!("no client span {name}"));
        assert_eq!(
            client.parent_span_id, feed.span_id,
            "{name} is called by engagement"
        );
        assert_eq!(count(name, CapturedSpan::SERVER), 1, "{name} served once");
    }
}

fn authed_get(app: &TestApp, path: &str, token: &str) -> reqwest::RequestBuilder {
    app.http
        .get(format!("{}{path}", app.gateway_url()))
        .bearer_auth(token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comments_posts_and_trending_show_only_what_the_reader_may_see() {
    let app = TestApp::builder()
        .env("SOCIALFLOW__SCORES__INTERVAL_SECS", "1")
        .spawn()
        .await;
    let owner = app
        .insert_user(&format!("own{}", testkit::unique_suffix()))
        .await;
    let owner_token = app.access_token_for(owner);
    let other = app
        .insert_user(&format!("other{}", testkit::unique_suffix()))
        .await;
    let other_token = app.access_token_for(other);
    let public = app.insert_owned_video(owner, "ready", "public", 60).await;
    let private = app.insert_owned_video(owner, "ready", "private", 60).await;
    let unfinished = app
        .insert_owned_video(owner, "processing", "public", 60)
        .await;

    // A comment, a reply, a reply to a reply (refused: one level).
    let comments = format!("/api/v1/videos/{public}/comments");
    let (status, top) = call(
        &app,
        Method::POST,
        &comments,
        Some(&other_token),
        Some(json!({ "text": "  first!  " })),
    )
    .await;
    assert_eq!(status, 201, "{top}");
    assert_eq!(top["text"], json!("first!"));
    assert_eq!(top["author"]["id"], json!(other.to_string()));
    let top_id = top["id"].as_str().expect("id").to_owned();
    let (status, reply) = call(
        &app,
        Method::POST,
        &comments,
        Some(&owner_token),
        Some(json!({ "text": "thanks", "parent_id": top_id })),
    )
    .await;
    assert_eq!(status, 201, "{reply}");
    let reply_id = reply["id"].as_str().expect("id").to_owned();
    let (status, body) = call(
        &app,
        Method::POST,
        &comments,
        Some(&other_token),
        Some(json!({ "text": "deeper", "parent_id": reply_id })),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    for bad in [
        json!({ "text": "" }),
        json!({ "text": "x".repeat(2001) }),
        json!({ "text": "a\u{0}b" }),
        json!({ "text": 5 }),
        json!({ "text": "ok", "parent_id": "nope" }),
    ] {
        let (status, body) =
            call(&app, Method::POST, &comments, Some(&other_token), Some(bad)).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body["error"].is_object() || body["message"].is_string() || body.is_object(),
            "{body}"
        );
    }
    let (status, body) = call(
        &app,
        Method::POST,
        &comments,
        None,
        Some(json!({ "text": "anon" })),
    )
    .await;
    assert_eq!(status, 401, "{body}");

    // Anyone reads them; the top level lists the comment with its reply count.
    let (status, page) = call(&app, Method::GET, &comments, None, None).await;
    assert_eq!(status, 200, "{page}");
    let listed = page["comments"].as_array().expect("comments");
    assert_eq!(listed.len(), 1, "{page}");
    assert_eq!(listed[0]["replies"], json!(1));
    let (_, replies) = call(
        &app,
        Method::GET,
        &format!("{comments}?parent_id={top_id}"),
        None,
        None,
    )
    .await;
    assert_eq!(replies["comments"][0]["id"], json!(reply_id));
    assert_eq!(shown_stats(&app, public).await["comments"], json!(2));

    // A private video's counts are its owner's only.
    let stats = format!("/api/v1/videos/{private}/stats");
    assert_eq!(call(&app, Method::GET, &stats, None, None).await.0, 404);
    assert_eq!(
        call(&app, Method::GET, &stats, Some(&owner_token), None)
            .await
            .0,
        200
    );

    // Private and unfinished videos: their comments are their owner's only.
    for video in [private, unfinished] {
        let path = format!("/api/v1/videos/{video}/comments");
        let (status, body) = call(
            &app,
            Method::POST,
            &path,
            Some(&owner_token),
            Some(json!({ "text": "note to self" })),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = call(&app, Method::GET, &path, Some(&other_token), None).await;
        assert_eq!(status, 404, "{body}");
        let (status, body) = call(&app, Method::GET, &path, None, None).await;
        assert_eq!(status, 404, "{body}");
        let (status, body) = call(&app, Method::GET, &path, Some(&owner_token), None).await;
        assert_eq!(status, 200, "{body}");
    }

    // Comment likes, then deletion by the video's owner (not by a stranger).
    let (status, body) = call(
        &app,
        Method::PUT,
        &format!("/api/v1/comments/{top_id}/like"),
        Some(&owner_token),
        None,
    )
    .await;
    assert_eq!((status, body["likes"].clone()), (200, json!(1)));
    let stranger = app.access_token_for(
        app.insert_user(&format!("str{}", testkit::unique_suffix()))
            .await,
    );
    let (status, body) = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/comments/{top_id}"),
        Some(&stranger),
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/comments/{top_id}"),
        Some(&owner_token),
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(shown_stats(&app, public).await["comments"], json!(0));
    assert_eq!(counter_mismatches(&app).await, Vec::<String>::new());

    // Posts: public, sharing a video only the reader may see.
    let (status, post) = call(
        &app,
        Method::POST,
        "/api/v1/posts",
        Some(&owner_token),
        Some(json!({ "text": "look", "video_id": private.to_string() })),
    )
    .await;
    assert_eq!(status, 201, "{post}");
    let post_id = post["id"].as_str().expect("id").to_owned();
    let (_, as_owner) = call(
        &app,
        Method::GET,
        &format!("/api/v1/posts/{post_id}"),
        Some(&owner_token),
        None,
    )
    .await;
    assert_eq!(as_owner["video"]["id"], json!(private.to_string()));
    let (status, as_other) = call(
        &app,
        Method::GET,
        &format!("/api/v1/posts/{post_id}"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(as_other["video"].is_null(), "{as_other}");
    let (_, mine) = call(
        &app,
        Method::GET,
        &format!("/api/v1/users/{owner}/posts"),
        None,
        None,
    )
    .await;
    assert_eq!(mine["posts"][0]["id"], json!(post_id));
    let (status, body) = call(
        &app,
        Method::PUT,
        &format!("/api/v1/posts/{post_id}/like"),
        Some(&other_token),
        None,
    )
    .await;
    assert_eq!((status, body["likes"].clone()), (200, json!(1)));
    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/posts/{post_id}"),
        Some(&other_token),
        None,
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/posts/{post_id}"),
        Some(&owner_token),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = call(
        &app,
        Method::GET,
        &format!("/api/v1/posts/{post_id}"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(counter_mismatches(&app).await, Vec::<String>::new());

    // Trending: watched and liked public videos, never the private one.
    let quiet = app.insert_owned_video(owner, "ready", "public", 60).await;
    for video in [public, private, quiet] {
        let (status, body) = call(
            &app,
            Method::POST,
            &format!("/api/v1/videos/{video}/views"),
            Some(&owner_token),
            Some(json!({ "watch_seconds": 30 })),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, _) = call(
        &app,
        Method::PUT,
        &format!("/api/v1/videos/{public}/like"),
        Some(&other_token),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, trending) = call(
        &app,
        Method::GET,
        "/api/v1/videos/trending?limit=10",
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{trending}");
    let ids: Vec<&str> = trending["videos"]
        .as_array()
        .expect("videos")
        .iter()
        .map(|v| v["video"]["id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        ids.first(),
        Some(&public.to_string().as_str()),
        "{trending}"
    );
    assert!(ids.contains(&quiet.to_string().as_str()), "{trending}");
    assert!(!ids.contains(&private.to_string().as_str()), "{trending}");
    let (status, _) = call(
        &app,
        Method::GET,
        "/api/v1/videos/trending?limit=51",
        None,
        None,
    )
    .await;
    assert_eq!(status, 400);

    // What happened is in the business metrics, with bounded labels only.
    let exact = [
        ("video_views_total", 3.0),
        ("likes_total{target_type=\"video\"}", 1.0),
        ("likes_total{target_type=\"comment\"}", 1.0),
        ("likes_total{target_type=\"post\"}", 1.0),
        ("post_likes_total", 1.0),
        ("comments_total", 4.0),
        ("posts_total", 1.0),
        (
            "user_engagement_duration_seconds_count{activity_type=\"watch\"}",
            3.0,
        ),
    ];
    for (selector, expected) in exact {
        support::wait_for_metric(&app, selector, expected).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let exposition = support::metrics(&app).await;
        let scored = support::metric_value(
            &exposition,
            "content_performance_score_count{content_type=\"video\"}",
        );
        let trending_ratio = exposition
            .lines()
            .any(|l| l.starts_with("engagement_cache_hit_ratio{cache=\"trending\"}"));
        let lag = exposition
            .lines()
            .any(|l| l.starts_with("engagement_view_flush_lag_seconds "));
        if scored >= 1.0 && trending_ratio && lag {
            for id in [public, private, owner, other] {
                assert!(
                    !exposition.contains(&id.to_string()),
                    "{id} in a metric label"
                );
            }
            support::promtool_check(&exposition);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "scores {scored}, trending ratio {trending_ratio}, flush lag {lag}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_account_or_a_video_takes_its_likes_and_comments_out_of_the_counts() {
    let app = TestApp::spawn().await;
    let owner = app
        .insert_user(&format!("own{}", testkit::unique_suffix()))
        .await;
    let owner_token = app.access_token_for(owner);
    let leaving = app
        .insert_user(&format!("leaving{}", testkit::unique_suffix()))
        .await;
    let leaving_token = app.access_token_for(leaving);
    let staying = app
        .insert_user(&format!("staying{}", testkit::unique_suffix()))
        .await;
    let staying_token = app.access_token_for(staying);
    let video = app.insert_owned_video(owner, "ready", "public", 60).await;
    let comments = format!("/api/v1/videos/{video}/comments");

    for token in [&leaving_token, &staying_token] {
        let (status, _) = call(
            &app,
            Method::PUT,
            &format!("/api/v1/videos/{video}/like"),
            Some(token),
            None,
        )
        .await;
        assert_eq!(status, 200);
        let (status, _) = call(
            &app,
            Method::POST,
            &format!("/api/v1/videos/{video}/views"),
            Some(token),
            Some(json!({ "watch_seconds": 30 })),
        )
        .await;
        assert_eq!(status, 200);
    }
    let (_, theirs) = call(
        &app,
        Method::POST,
        &comments,
        Some(&leaving_token),
        Some(json!({ "text": "bye" })),
    )
    .await;
    let theirs_id = theirs["id"].as_str().expect("id").to_owned();
    let (_, reply) = call(
        &app,
        Method::POST,
        &comments,
        Some(&staying_token),
        Some(json!({ "text": "why?", "parent_id": theirs_id })),
    )
    .await;
    assert!(reply["id"].is_string(), "{reply}");
    let (_, kept) = call(
        &app,
        Method::POST,
        &comments,
        Some(&staying_token),
        Some(json!({ "text": "staying" })),
    )
    .await;
    let kept_id = kept["id"].as_str().expect("id").to_owned();
    let (_, reply_by_leaver) = call(
        &app,
        Method::POST,
        &comments,
        Some(&leaving_token),
        Some(json!({ "text": "because", "parent_id": kept_id })),
    )
    .await;
    assert!(reply_by_leaver["id"].is_string());
    let (status, _) = call(
        &app,
        Method::PUT,
        &format!("/api/v1/comments/{kept_id}/like"),
        Some(&leaving_token),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (_, post) = call(
        &app,
        Method::POST,
        "/api/v1/posts",
        Some(&leaving_token),
        Some(json!({ "text": "farewell" })),
    )
    .await;
    let post_id = post["id"].as_str().expect("id").to_owned();
    let (status, _) = call(
        &app,
        Method::PUT,
        &format!("/api/v1/posts/{post_id}/like"),
        Some(&staying_token),
        None,
    )
    .await;
    assert_eq!(status, 200);
    wait_for_views(&app, video, 2).await;
    let before = shown_stats(&app, video).await;
    assert_eq!(
        (before["likes"].clone(), before["comments"].clone()),
        (json!(2), json!(4))
    );

    // The account goes: its likes, comments (and the replies under them), posts.
    let (status, body) = call(
        &app,
        Method::DELETE,
        "/api/v1/me",
        Some(&leaving_token),
        None,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let after = shown_stats(&app, video).await;
    assert_eq!(after["likes"], json!(1), "{after}");
    assert_eq!(
        after["comments"],
        json!(1),
        "only the kept comment stays: {after}"
    );
    assert_eq!(
        after["views"],
        json!(2),
        "views are anonymous sums and stay: {after}"
    );
    let (_, page) = call(&app, Method::GET, &comments, None, None).await;
    let listed = page["comments"].as_array().expect("comments");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], json!(kept_id));
    assert_eq!(listed[0]["likes"], json!(0));
    assert_eq!(listed[0]["replies"], json!(0));
    let (status, _) = call(
        &app,
        Method::GET,
        &format!("/api/v1/posts/{post_id}"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        scalar(
            &app,
            "SELECT count(*) FROM engagement.likes WHERE user_id = $1",
            leaving
        )
        .await,
        0
    );
    assert_eq!(counter_mismatches(&app).await, Vec::<String>::new());

    // The video goes: its counts, likes and comments with it, and nothing new is counted.
    let (status, body) = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/videos/{video}"),
        Some(&owner_token),
        None,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (status, stats) = call(
        &app,
        Method::GET,
        &format!("/api/v1/videos/{video}/stats"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 404, "the video is gone, and its counts: {stats}");
    for sql in [
        "SELECT count(*) FROM engagement.likes WHERE target_id = $1",
        "SELECT count(*) FROM engagement.comments WHERE video_id = $1",
        "SELECT count(*) FROM engagement.video_stats WHERE video_id = $1",
    ] {
        assert_eq!(scalar(&app, sql, video).await, 0, "{sql}");
    }
    assert_eq!(
        scalar(
            &app,
            "SELECT count(*) FROM engagement.likes WHERE target_id = $1::uuid",
            kept_id.parse().expect("uuid")
        )
        .await,
        0
    );
    let (status, _) = call(
        &app,
        Method::PUT,
        &format!("/api/v1/videos/{video}/like"),
        Some(&staying_token),
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(counter_mismatches(&app).await, Vec::<String>::new());
}
