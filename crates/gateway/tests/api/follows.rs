use serde_json::Value;
use testkit::TestApp;

use crate::support::{
    Account, access_token, authed, expect_error, expect_unauthenticated, register, text,
};

async fn follow(app: &TestApp, token: &str, user_id: &str) -> reqwest::Response {
    authed(
        app,
        reqwest::Method::PUT,
        &format!("/api/v1/users/{user_id}/follow"),
        token,
    )
    .send()
    .await
    .expect("gateway answers")
}

async fn unfollow(app: &TestApp, token: &str, user_id: &str) -> reqwest::Response {
    authed(
        app,
        reqwest::Method::DELETE,
        &format!("/api/v1/users/{user_id}/follow"),
        token,
    )
    .send()
    .await
    .expect("gateway answers")
}

/// The public profile of `user_id`.
async fn profile(app: &TestApp, user_id: &str) -> Value {
    let response = app.get(&format!("/api/v1/users/{user_id}")).await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

/// `(followers_count, following_count)` of `user_id`.
async fn counts(app: &TestApp, user_id: &str) -> (u64, u64) {
    let p = profile(app, user_id).await;
    (
        p["followers_count"].as_u64().expect("followers_count"),
        p["following_count"].as_u64().expect("following_count"),
    )
}

/// Every page of `/api/v1/users/{id}/{list}` with `limit`, in order: the usernames seen.
async fn all_pages(app: &TestApp, user_id: &str, list: &str, limit: usize) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..20 {
        let mut query = vec![("limit", limit.to_string())];
        if let Some(c) = &cursor {
            query.push(("cursor", c.clone()));
        }
        let response = app
            .http
            .get(format!(
                "{}/api/v1/users/{user_id}/{list}",
                app.gateway_url()
            ))
            .query(&query)
            .send()
            .await
            .expect("gateway answers");
        assert_eq!(response.status(), 200);
        let page: Value = response.json().await.expect("json");
        let users = page["users"].as_array().expect("users array");
        assert!(users.len() <= limit, "a page holds at most `limit`: {page}");
        for user in users {
            assert!(user.get("email").is_none(), "public profiles only: {user}");
            assert!(user["followers_count"].is_u64(), "{user}");
            seen.push(text(user, "username"));
        }
        match &page["next_cursor"] {
            Value::String(next) => cursor = Some(next.clone()),
            Value::Null => return seen,
            other => panic!("next_cursor is a string or null, got {other}"),
        }
    }
    panic!("more than 20 pages of {list}; the cursor does not advance");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_is_idempotent_and_shows_in_both_counts() {
    let app = TestApp::spawn().await;
    let ann = register(&app, "ann").await;
    let bob = register(&app, "bob").await;
    let token = access_token(&app, &ann).await;

    for _ in 0..2 {
        assert_eq!(follow(&app, &token, &bob.id).await.status(), 204);
    }
    assert_eq!(counts(&app, &bob.id).await, (1, 0));
    assert_eq!(counts(&app, &ann.id).await, (0, 1));
    assert_eq!(all_pages(&app, &bob.id, "followers", 20).await, ["ann"]);
    assert_eq!(all_pages(&app, &ann.id, "following", 20).await, ["bob"]);

    for _ in 0..2 {
        assert_eq!(unfollow(&app, &token, &bob.id).await.status(), 204);
    }
    assert_eq!(counts(&app, &bob.id).await, (0, 0));
    assert_eq!(counts(&app, &ann.id).await, (0, 0));
    assert!(all_pages(&app, &bob.id, "followers", 20).await.is_empty());
    assert!(all_pages(&app, &ann.id, "following", 20).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_yourself_an_unknown_user_or_without_a_token_is_refused() {
    let app = TestApp::spawn().await;
    let ann = register(&app, "ann").await;
    let bob = register(&app, "bob").await;
    let token = access_token(&app, &ann).await;

    let response = follow(&app, &token, &ann.id).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("json");
    let message = text(&body["error"], "message");
    assert!(message.contains("yourself"), "`{message}`");

    expect_error(
        follow(&app, &token, &uuid::Uuid::new_v4().to_string()).await,
        404,
        "not_found",
    )
    .await;
    expect_error(
        follow(&app, &token, "not-a-uuid").await,
        400,
        "invalid_argument",
    )
    .await;

    for method in [reqwest::Method::PUT, reqwest::Method::DELETE] {
        let anonymous = app
            .http
            .request(
                method.clone(),
                format!("{}/api/v1/users/{}/follow", app.gateway_url(), bob.id),
            )
            .send()
            .await
            .expect("gateway answers");
        expect_unauthenticated(anonymous).await;
        let forged = authed(
            &app,
            method,
            &format!("/api/v1/users/{}/follow", bob.id),
            "not.a.token",
        )
        .send()
        .await
        .expect("gateway answers");
        expect_unauthenticated(forged).await;
    }

    // Nothing of that was recorded.
    assert_eq!(counts(&app, &ann.id).await, (0, 0));
    assert_eq!(counts(&app, &bob.id).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_and_following_page_newest_first_with_cursors() {
    let app = TestApp::spawn().await;
    let star = register(&app, "star").await;
    let fan = register(&app, "fan").await;
    let mut others: Vec<Account> = Vec::new();
    for i in 0..5 {
        others.push(register(&app, &format!("follower_{i}")).await);
    }

    // Each of the five follows the star, one after the other; the fan follows each of them.
    let fan_token = access_token(&app, &fan).await;
    for other in &others {
        let token = access_token(&app, other).await;
        assert_eq!(follow(&app, &token, &star.id).await.status(), 204);
        assert_eq!(follow(&app, &fan_token, &other.id).await.status(), 204);
    }
    let newest_first: Vec<String> = others.iter().rev().map(|a| a.username.clone()).collect();

    assert_eq!(
        all_pages(&app, &star.id, "followers", 2).await,
        newest_first
    );
    assert_eq!(all_pages(&app, &fan.id, "following", 2).await, newest_first);
    // One page when it all fits; the default page holds five.
    assert_eq!(
        all_pages(&app, &star.id, "followers", 5).await,
        newest_first
    );
    let response = app
        .get(&format!("/api/v1/users/{}/followers", star.id))
        .await;
    assert_eq!(response.status(), 200);
    let page: Value = response.json().await.expect("json");
    assert_eq!(page["users"].as_array().map(Vec::len), Some(5), "{page}");
    assert!(page["next_cursor"].is_null(), "{page}");

    assert_eq!(counts(&app, &star.id).await, (5, 0));
    assert_eq!(counts(&app, &fan.id).await, (0, 5));

    // Someone who stops following leaves the list.
    let token = access_token(&app, &others[2]).await;
    assert_eq!(unfollow(&app, &token, &star.id).await.status(), 204);
    let expected: Vec<String> = newest_first
        .iter()
        .filter(|u| *u != "follower_2")
        .cloned()
        .collect();
    assert_eq!(all_pages(&app, &star.id, "followers", 2).await, expected);
    assert_eq!(counts(&app, &star.id).await, (4, 0));

    for (query, needle) in [
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("limit=1000", "limit"),
        ("cursor=bm9wZQ", "cursor"),
    ] {
        for list in ["followers", "following"] {
            let response = app
                .get(&format!("/api/v1/users/{}/{list}?{query}", star.id))
                .await;
            let body = expect_error(response, 400, "invalid_argument").await;
            let message = text(&body["error"], "message");
            assert!(message.contains(needle), "{list}?{query}: `{message}`");
        }
    }
}
