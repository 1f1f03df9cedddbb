use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::{CapturedSpan, TestApp};

use crate::support::{
    Account, authed, expect_error, expect_unauthenticated, login, me, metric, refresh, register,
    request_id, strong_password, text, try_login, user_rows, wait_for_log, wait_for_metric,
};

const REUSE: &str = r#"security_events_total{event_type="refresh_token_reuse",severity="high"}"#;

async fn patch_me(app: &TestApp, token: &str, body: &Value) -> reqwest::Response {
    authed(app, reqwest::Method::PATCH, "/api/v1/me", token)
        .json(body)
        .send()
        .await
        .expect("gateway answers")
}

async fn delete_me(app: &TestApp, token: &str) -> reqwest::Response {
    authed(app, reqwest::Method::DELETE, "/api/v1/me", token)
        .send()
        .await
        .expect("gateway answers")
}

async fn logout(app: &TestApp, refresh_token: &str) -> reqwest::Response {
    app.post_json(
        "/api/v1/auth/logout",
        &json!({ "refresh_token": refresh_token }),
    )
    .await
}

async fn register_body(app: &TestApp, body: Value) -> reqwest::Response {
    app.post_json("/api/v1/auth/register", &body).await
}

/// Asserts a 400 `invalid_argument` whose message is `<field>: <reason>`.
async fn expect_invalid_field(response: reqwest::Response, field: &str) {
    let body = expect_error(response, 400, "invalid_argument").await;
    let message = text(&body["error"], "message");
    assert!(
        message.starts_with(&format!("{field}:")),
        "`{message}` should start with `{field}:`"
    );
}

/// Asserts a 200 token answer and returns it.
async fn expect_tokens(response: reqwest::Response, user_id: &str) -> Value {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("tokens are JSON");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer", "{body}");
    assert_eq!(body["user_id"], user_id, "{body}");
    assert!(body["expires_in"].as_u64().is_some_and(|s| s > 0), "{body}");
    assert!(!text(&body, "access_token").is_empty());
    assert!(!text(&body, "refresh_token").is_empty());
    body
}

/// A copy of `token` with one character of its signature changed.
fn tampered(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    // Well inside the last segment, so the decoded bytes change (the last character of an
    // unpadded base64 signature partly encodes padding bits).
    let i = chars.len() - 10;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

fn assert_no_password_fields(profile: &Value) {
    let object = profile.as_object().expect("a profile is an object");
    assert!(
        object.keys().all(|k| !k.contains("password")),
        "a profile must not carry the password or its hash: {profile}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_registers_logs_in_reads_itself_refreshes_and_logs_out() {
    let app = TestApp::spawn().await;
    let password = strong_password("ann_lee");
    let response = register_body(
        &app,
        json!({
            "email": "ann@example.com",
            "username": "ann_lee",
            "password": password,
            "display_name": "Ann Lee",
        }),
    )
    .await;
    assert_eq!(response.status(), 201);
    let profile: Value = response.json().await.expect("json");
    let id = text(&profile, "id");
    uuid::Uuid::parse_str(&id).expect("the id is a UUID");
    assert_eq!(profile["email"], "ann@example.com");
    assert_eq!(profile["username"], "ann_lee");
    assert_eq!(profile["display_name"], "Ann Lee");
    assert!(profile.get("bio").is_some(), "{profile}");
    assert!(
        profile.get("avatar_url").is_some_and(Value::is_null),
        "no avatar yet: {profile}"
    );
    assert!(profile["created_at"].is_string(), "{profile}");
    assert_no_password_fields(&profile);

    // By username and by email.
    let first = expect_tokens(try_login(&app, "ann_lee", &password).await, &id).await;
    expect_tokens(try_login(&app, "ann@example.com", &password).await, &id).await;

    let response = me(&app, &text(&first, "access_token")).await;
    assert_eq!(response.status(), 200);
    let mine: Value = response.json().await.expect("json");
    assert_eq!(
        mine, profile,
        "GET /me is the private profile registration returned"
    );

    // Rotation: a new refresh token, and the old one is spent once the new one is used.
    let old_refresh = text(&first, "refresh_token");
    let second = expect_tokens(refresh(&app, &old_refresh).await, &id).await;
    assert_ne!(text(&second, "refresh_token"), old_refresh);
    assert_eq!(
        me(&app, &text(&second, "access_token")).await.status(),
        200,
        "the refreshed access token works"
    );
    expect_tokens(refresh(&app, &text(&second, "refresh_token")).await, &id).await;
    expect_error(refresh(&app, &old_refresh).await, 401, "unauthenticated").await;

    // Logout ends that session only.
    let session = login(&app, "ann_lee", &password).await;
    let other = login(&app, "ann_lee", &password).await;
    let response = logout(&app, &text(&session, "refresh_token")).await;
    assert_eq!(response.status(), 204);
    expect_error(
        refresh(&app, &text(&session, "refresh_token")).await,
        401,
        "unauthenticated",
    )
    .await;
    expect_tokens(refresh(&app, &text(&other, "refresh_token")).await, &id).await;

    expect_error(
        refresh(&app, "not-a-refresh-token").await,
        401,
        "unauthenticated",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn me_without_a_valid_access_token_is_401_with_a_bearer_challenge() {
    let app = TestApp::spawn().await;
    let ann = register(&app, "ann").await;
    let bob = register(&app, "bob").await;
    let ann_token = text(&login(&app, "ann", &ann.password).await, "access_token");
    let bob_token = text(&login(&app, "bob", &bob.password).await, "access_token");

    let anonymous = app.get("/api/v1/me").await;
    expect_unauthenticated(anonymous).await;
    expect_unauthenticated(me(&app, "garbage").await).await;
    expect_unauthenticated(me(&app, &tampered(&ann_token)).await).await;
    // Ann's claims under Bob's signature.
    let ann_parts: Vec<&str> = ann_token.split('.').collect();
    let bob_parts: Vec<&str> = bob_token.split('.').collect();
    assert_eq!(ann_parts.len(), 3, "a JWT has three parts");
    assert_eq!(bob_parts.len(), 3, "a JWT has three parts");
    let forged = format!("{}.{}.{}", ann_parts[0], ann_parts[1], bob_parts[2]);
    expect_unauthenticated(me(&app, &forged).await).await;
    // Not a Bearer scheme.
    let basic = app
        .http
        .get(format!("{}/api/v1/me", app.gateway_url()))
        .header("Authorization", format!("Basic {ann_token}"))
        .send()
        .await
        .expect("gateway answers");
    expect_unauthenticated(basic).await;

    let mine: Value = me(&app, &ann_token).await.json().await.expect("json");
    assert_eq!(mine["id"], ann.id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_access_token_is_401_and_the_refresh_token_still_renews_it() {
    let app = TestApp::builder()
        .env("SOCIALFLOW__AUTH__ACCESS_TOKEN_TTL_SECS", "1")
        .spawn()
        .await;
    let ann = register(&app, "ann").await;
    let tokens = login(&app, "ann", &ann.password).await;
    assert_eq!(tokens["expires_in"], 1, "{tokens}");
    let access = text(&tokens, "access_token");

    let deadline = Instant::now() + Duration::from_secs(5);
    let expired = loop {
        let response = me(&app, &access).await;
        if response.status() == 401 {
            break response;
        }
        assert_eq!(response.status(), 200);
        assert!(
            Instant::now() < deadline,
            "a 1-second token still works after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    expect_unauthenticated(expired).await;

    expect_tokens(
        refresh(&app, &text(&tokens, "refresh_token")).await,
        &ann.id,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_is_updated_and_a_deleted_account_is_gone() {
    let app = TestApp::spawn().await;
    let ann = register(&app, "ann_lee").await;
    let tokens = login(&app, "ann_lee", &ann.password).await;
    let token = text(&tokens, "access_token");

    let response = patch_me(
        &app,
        &token,
        &json!({
            "display_name": "Ann L.",
            "bio": "Timelapses of sunsets.",
            "avatar_url": "https://cdn.example.com/avatars/ann.png",
        }),
    )
    .await;
    assert_eq!(response.status(), 200);
    let updated: Value = response.json().await.expect("json");
    assert_eq!(updated["id"], ann.id.as_str());
    assert_eq!(updated["email"], ann.email.as_str());
    assert_eq!(updated["username"], "ann_lee");
    assert_eq!(updated["display_name"], "Ann L.");
    assert_eq!(updated["bio"], "Timelapses of sunsets.");
    assert_eq!(
        updated["avatar_url"],
        "https://cdn.example.com/avatars/ann.png"
    );
    assert_eq!(updated["created_at"], ann.profile["created_at"]);

    // Fields left out are kept.
    let response = patch_me(&app, &token, &json!({ "bio": "Sunsets, mostly." })).await;
    assert_eq!(response.status(), 200);
    let updated: Value = response.json().await.expect("json");
    assert_eq!(updated["display_name"], "Ann L.");
    assert_eq!(updated["bio"], "Sunsets, mostly.");
    let mine: Value = me(&app, &token).await.json().await.expect("json");
    assert_eq!(mine, updated);

    // Invalid changes are refused and change nothing.
    for (body, field) in [
        (json!({ "bio": "b".repeat(501) }), "bio"),
        (json!({ "display_name": "" }), "display_name"),
        (json!({ "display_name": "d".repeat(65) }), "display_name"),
        (
            json!({ "avatar_url": "http://cdn.example.com/a.png" }),
            "avatar_url",
        ),
        (json!({ "avatar_url": "not a url" }), "avatar_url"),
        (
            json!({ "avatar_url": format!("https://cdn.example.com/{}", "a".repeat(2030)) }),
            "avatar_url",
        ),
    ] {
        expect_invalid_field(patch_me(&app, &token, &body).await, field).await;
    }
    let mine: Value = me(&app, &token).await.json().await.expect("json");
    assert_eq!(mine, updated, "refused changes wrote nothing");
    let anonymous = app
        .http
        .patch(format!("{}/api/v1/me", app.gateway_url()))
        .json(&json!({ "bio": "anonymous" }))
        .send()
        .await
        .expect("gateway answers");
    expect_unauthenticated(anonymous).await;

    // The public profile: no email, the counts, the same by id and by username in any case.
    let response = app.get(&format!("/api/v1/users/{}", ann.id)).await;
    assert_eq!(response.status(), 200);
    let public: Value = response.json().await.expect("json");
    assert!(
        public.get("email").is_none(),
        "no email in public: {public}"
    );
    assert_no_password_fields(&public);
    assert_eq!(public["username"], "ann_lee");
    assert_eq!(public["display_name"], "Ann L.");
    assert_eq!(public["bio"], "Sunsets, mostly.");
    assert_eq!(public["followers_count"], 0);
    assert_eq!(public["following_count"], 0);
    let response = app.get("/api/v1/users/by-username/ANN_Lee").await;
    assert_eq!(response.status(), 200);
    let by_name: Value = response.json().await.expect("json");
    assert_eq!(by_name, public);

    // Delete: gone for login, lookups and the old refresh token.
    assert_eq!(delete_me(&app, &token).await.status(), 204);
    let response = try_login(&app, "ann_lee", &ann.password).await;
    let body = expect_error(response, 401, "unauthenticated").await;
    assert_eq!(body["error"]["message"], "invalid login or password");
    expect_error(
        app.get(&format!("/api/v1/users/{}", ann.id)).await,
        404,
        "not_found",
    )
    .await;
    expect_error(
        app.get("/api/v1/users/by-username/ann_lee").await,
        404,
        "not_found",
    )
    .await;
    expect_error(
        refresh(&app, &text(&tokens, "refresh_token")).await,
        401,
        "unauthenticated",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_in_any_letter_case_and_invalid_fields_are_refused_and_write_nothing() {
    let app = TestApp::spawn().await;
    let registrations = metric(&app, "user_registrations_total").await;
    register(&app, "ann_lee").await;
    assert_eq!(user_rows(&app).await, 1);

    let password = strong_password("someone_else");
    for (body, field) in [
        (
            json!({ "email": "ANN_LEE@Example.COM", "username": "someone_else",
                    "password": password, "display_name": "Other" }),
            "email",
        ),
        (
            json!({ "email": "other@example.com", "username": "Ann_LEE",
                    "password": password, "display_name": "Other" }),
            "username",
        ),
    ] {
        let conflict = expect_error(register_body(&app, body).await, 409, "already_exists").await;
        let message = text(&conflict["error"], "message");
        assert!(message.contains(field), "`{message}` should name `{field}`");
    }

    let valid = |field: &str, value: Value| {
        let mut body = json!({
            "email": "new@example.com",
            "username": "new_user",
            "password": strong_password("new_user"),
            "display_name": "New",
        });
        body[field] = value;
        body
    };
    let cases = [
        (valid("email", json!("not-an-email")), "email"),
        (valid("email", json!("two@@example.com")), "email"),
        (valid("email", json!("")), "email"),
        (valid("username", json!("ab")), "username"),
        (valid("username", json!("u".repeat(31))), "username"),
        (valid("username", json!("has space")), "username"),
        (valid("username", json!("dash-ed")), "username"),
        (valid("password", json!("short-pw1")), "password"),
        (valid("password", json!("p".repeat(129))), "password"),
        (valid("password", json!("1234567890")), "password"),
        (valid("password", json!("xx-new_user-xx-12345")), "password"),
        (valid("display_name", json!("")), "display_name"),
        (valid("display_name", json!("d".repeat(65))), "display_name"),
    ];
    for (body, field) in cases {
        expect_invalid_field(register_body(&app, body).await, field).await;
    }

    assert_eq!(
        user_rows(&app).await,
        1,
        "no refused registration wrote a row"
    );
    wait_for_metric(&app, "user_registrations_total", registrations + 1.0).await;
    // The limits themselves are allowed.
    let mut edge = valid("username", json!("u".repeat(30)));
    edge["password"] = json!(strong_password(&"u".repeat(30))[..10]);
    edge["display_name"] = json!("d".repeat(64));
    let response = register_body(&app, edge).await;
    assert_eq!(response.status(), 201);
    assert_eq!(user_rows(&app).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_refresh_token_revokes_its_family_and_counts_a_security_event() {
    let app = TestApp::spawn().await;
    let ann = register(&app, "ann").await;
    let first = login(&app, "ann", &ann.password).await;
    let elsewhere = login(&app, "ann", &ann.password).await;
    let stolen = text(&first, "refresh_token");
    let second = expect_tokens(refresh(&app, &stolen).await, &ann.id).await;
    let newest = expect_tokens(
        refresh(&app, &text(&second, "refresh_token")).await,
        &ann.id,
    )
    .await;
    let before = metric(&app, REUSE).await;

    expect_error(refresh(&app, &stolen).await, 401, "unauthenticated").await;
    wait_for_metric(&app, REUSE, before + 1.0).await;
    // The whole family is revoked: the legitimate holder's newest token too.
    expect_error(
        refresh(&app, &text(&newest, "refresh_token")).await,
        401,
        "unauthenticated",
    )
    .await;
    // Another session (another family) is untouched, and logging in again works.
    expect_tokens(
        refresh(&app, &text(&elsewhere, "refresh_token")).await,
        &ann.id,
    )
    .await;
    login(&app, "ann", &ann.password).await;

    let line = wait_for_log("for the refresh token reuse", |l| {
        l["event_category"] == "security"
            && l["event_type"] == "refresh_token_reuse"
            && l["user_id"] == ann.id.as_str()
    })
    .await;
    assert_eq!(line["severity"], "high", "{line}");
    assert_eq!(line["user_id"], ann.id.as_str(), "{line}");
}

/// Every request of a session, for the leak check: register, good and bad logins, GET
/// /me, refresh, logout. Returns the account, every credential sent or received, and the
/// request ids.
async fn a_whole_session(app: &TestApp) -> (Account, Vec<String>, Vec<String>) {
    let ann = register(app, "ann").await;
    let wrong_password = strong_password("ann");
    let mut request_ids = Vec::new();
    let mut secrets = vec![ann.password.clone(), wrong_password.clone()];

    let response = try_login(app, "ann", &wrong_password).await;
    request_ids.push(request_id(&response));
    expect_error(response, 401, "unauthenticated").await;

    let response = try_login(app, "ann@example.com", &ann.password).await;
    request_ids.push(request_id(&response));
    let tokens = expect_tokens(response, &ann.id).await;
    let access = text(&tokens, "access_token");
    secrets.push(access.clone());
    secrets.push(text(&tokens, "refresh_token"));

    let response = me(app, &access).await;
    request_ids.push(request_id(&response));
    assert_eq!(response.status(), 200);

    let response = refresh(app, &text(&tokens, "refresh_token")).await;
    request_ids.push(request_id(&response));
    let renewed = expect_tokens(response, &ann.id).await;
    secrets.push(text(&renewed, "access_token"));
    secrets.push(text(&renewed, "refresh_token"));

    let response = logout(app, &text(&renewed, "refresh_token")).await;
    request_ids.push(request_id(&response));
    assert_eq!(response.status(), 204);
    (ann, secrets, request_ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_are_stored_as_argon2id_and_no_credential_reaches_logs_or_spans() {
    let app = TestApp::spawn().await;
    let (ann, secrets, request_ids) = a_whole_session(&app).await;

    let hash: String = app
        .db
        .connect()
        .await
        .query_one(
            "SELECT password_hash FROM users.users WHERE id::text = $1",
            &[&ann.id],
        )
        .await
        .expect("the user's row")
        .get(0);
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "argon2id with OWASP parameters, got {hash}"
    );
    assert!(!hash.contains(&ann.password));

    let telemetry = testkit::telemetry();
    let rpcs = ["Register", "Login", "GetMe", "Refresh", "Logout"]
        .map(|m| format!("socialflow.user.v1.UserService/{m}"));
    let spans = telemetry
        .wait_for_spans(Duration::from_secs(15), |spans| {
            request_ids.iter().all(|id| {
                spans
                    .iter()
                    .any(|s| s.attr("request_id") == Some(id.as_str()))
            }) && rpcs.iter().all(|rpc| {
                spans
                    .iter()
                    .any(|s| s.kind == CapturedSpan::SERVER && &s.name == rpc)
            })
        })
        .await;
    for id in &request_ids {
        assert!(
            spans
                .iter()
                .any(|s| s.attr("request_id") == Some(id.as_str())),
            "the gateway span of request {id} was exported"
        );
    }
    for rpc in &rpcs {
        assert!(
            spans
                .iter()
                .any(|s| s.kind == CapturedSpan::SERVER && &s.name == rpc),
            "user-service's span of {rpc} was exported"
        );
    }

    let logs = telemetry.logs.text();
    for secret in secrets.iter().chain([&hash]) {
        let shown = &secret[..secret.len().min(12)];
        assert!(
            !logs.contains(secret.as_str()),
            "a credential ({shown}…) leaked into a log line"
        );
        for span in &spans {
            for (key, value) in &span.attributes {
                assert!(
                    !value.contains(secret.as_str()),
                    "a credential ({shown}…) leaked into attribute {key} of span {}",
                    span.name
                );
            }
        }
    }
}
