use serde_json::{Value, json};
use testkit::TestApp;

/// Asserts a JSON error with `status` whose message mentions `needle`.
async fn assert_error(response: reqwest::Response, status: u16, needle: &str) {
    let actual = response.status().as_u16();
    let request_id = response
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().expect("ascii").to_owned());
    let body: Value = response
        .json()
        .await
        .unwrap_or_else(|e| panic!("{status}: body is not JSON: {e}"));
    assert_eq!(actual, status, "{body}");
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error.message: {body}"));
    assert!(
        message.contains(needle),
        "`{message}` should mention `{needle}`"
    );
    assert!(body["error"]["code"].is_string(), "{body}");
    assert_eq!(body["error"]["request_id"].as_str(), request_id.as_deref());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_ids_are_400_naming_the_id() {
    let app = TestApp::spawn().await;
    for path in [
        "/api/v1/videos/not-a-uuid",
        "/api/v1/users/123",
        "/api/v1/videos/x%27%3B/stats",
    ] {
        assert_error(app.get(path).await, 400, "must be a UUID").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_query_strings_are_400() {
    let app = TestApp::spawn().await;
    assert_error(app.get("/api/v1/videos?limit=abc").await, 400, "limit").await;
    assert_error(app.get("/api/v1/videos?limit=-1").await, 400, "limit").await;
    assert_error(app.get("/api/v1/videos?limit=0").await, 400, "limit").await;
    assert_error(app.get("/api/v1/videos?limit=1000").await, 400, "limit").await;
    assert_error(app.get("/api/v1/videos?cursor=bm9wZQ").await, 400, "cursor").await;
    assert_error(app.get("/api/v1/videos?sort=asc").await, 400, "sort").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_4xx_naming_the_problem_and_write_nothing() {
    let app = TestApp::spawn().await;
    let cases = [
        (
            json!({ "email": "a@example.com", "username": "abc" }),
            400,
            "password",
        ),
        (
            json!({ "email": 5, "username": "abc", "password": "a long passphrase 42", "display_name": "A" }),
            400,
            "invalid type",
        ),
        (
            json!({ "email": "not-an-email", "username": "abc", "password": "a long passphrase 42", "display_name": "A" }),
            400,
            "email",
        ),
        (
            json!({ "email": "a@example.com", "username": "a b", "password": "a long passphrase 42", "display_name": "A" }),
            400,
            "username",
        ),
        (
            json!({ "email": "a@example.com", "username": "abc", "password": "a long passphrase 42", "display_name": "" }),
            400,
            "display_name",
        ),
        (
            json!({ "email": "a@example.com", "username": "abc", "password": "a long passphrase 42", "display_name": "A", "admin": true }),
            400,
            "admin",
        ),
    ];
    for (body, status, needle) in cases {
        assert_error(
            app.post_json("/api/v1/auth/register", &body).await,
            status,
            needle,
        )
        .await;
    }

    let oversized = json!({ "email": "a@example.com", "username": "abc", "password": "a long passphrase 42", "display_name": "x".repeat(10_000) });
    assert_error(
        app.post_json("/api/v1/auth/register", &oversized).await,
        413,
        "larger than",
    )
    .await;

    let not_json = app
        .http
        .post(format!("{}/api/v1/auth/register", app.gateway_url()))
        .header("Content-Type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .expect("answer");
    assert_error(not_json, 400, "JSON").await;

    let wrong_type = app
        .http
        .post(format!("{}/api/v1/auth/register", app.gateway_url()))
        .header("Content-Type", "text/plain")
        .body("hello")
        .send()
        .await
        .expect("answer");
    assert_error(wrong_type, 415, "JSON").await;

    let rows: i64 = app
        .db
        .connect()
        .await
        .query_one("SELECT count(*) FROM users.users", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(rows, 0, "no failed request wrote anything");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_methods_are_json_errors() {
    let app = TestApp::spawn().await;
    assert_error(app.get("/api/v1/nothing-here").await, 404, "no route").await;
    let delete = app
        .http
        .delete(format!("{}/api/v1/videos", app.gateway_url()))
        .send()
        .await
        .expect("answer");
    assert_error(delete, 405, "DELETE").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_that_carry_credentials_take_smaller_bodies_than_the_rest() {
    let app = TestApp::builder()
        .env("SOCIALFLOW__HTTP__MAX_BODY_BYTES", "65536")
        .spawn()
        .await;
    let big = "x".repeat(5_000);
    for path in [
        "/api/v1/auth/login",
        "/api/v1/auth/register",
        "/api/v1/auth/refresh",
    ] {
        assert_error(
            app.post_json(path, &json!({ "login": big, "password": big }))
                .await,
            413,
            "4096 bytes",
        )
        .await;
    }
    // The same size on a profile change is read, and refused for what it says.
    let ann = crate::support::register(&app, "ann").await;
    let token = crate::support::access_token(&app, &ann).await;
    let response = crate::support::authed(&app, reqwest::Method::PATCH, "/api/v1/me", &token)
        .json(&json!({ "bio": big }))
        .send()
        .await
        .expect("gateway answers");
    assert_error(response, 400, "bio").await;
}

/// Postgres cannot store U+0000 in text: every field that reaches it refuses it with a 400
/// (found by contract fuzzing: a NUL in a login was a 500).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_character_in_any_text_is_a_400_never_a_500() {
    let app = TestApp::spawn().await;
    let account = crate::support::register(&app, "nul_tester").await;
    let token = crate::support::access_token(&app, &account).await;
    let video = app.insert_video("Nul", "ready").await;
    let nul = "a\u{0}b";
    let login = app
        .post_json(
            "/api/v1/auth/login",
            &json!({ "login": nul, "password": "whatever-1234" }),
        )
        .await;
    assert_error(login, 400, "NUL").await;
    let register = app
        .post_json(
            "/api/v1/auth/register",
            &json!({ "email": format!("{nul}@example.com"), "username": "nul_user", "password": "a-long-passphrase-9", "display_name": "N" }),
        )
        .await;
    assert_eq!(register.status(), 400);
    for (method, path, body) in [
        (
            reqwest::Method::PATCH,
            "/api/v1/me".to_owned(),
            json!({ "bio": nul }),
        ),
        (
            reqwest::Method::POST,
            "/api/v1/posts".to_owned(),
            json!({ "text": nul }),
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/videos/{video}/comments"),
            json!({ "text": nul }),
        ),
        (
            reqwest::Method::PATCH,
            format!("/api/v1/videos/{video}"),
            json!({ "title": nul }),
        ),
    ] {
        let response = crate::support::authed(&app, method.clone(), &path, &token)
            .json(&body)
            .send()
            .await
            .expect("gateway answers");
        let status = response.status().as_u16();
        assert!(
            (400..500).contains(&status),
            "{method} {path} answered {status}"
        );
    }
}
