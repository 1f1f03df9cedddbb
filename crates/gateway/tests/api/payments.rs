//! Payments end to end: idempotent subscriptions under concurrency, declines and provider
//! timeouts, the ledger's rules enforced by Postgres, and revenue counters that equal the
//! books after a mixed workload (subscriptions, ad revenue, creator payouts).

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use testkit::TestApp;
use uuid::Uuid;

use crate::support;

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    key: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app
        .http
        .request(method, format!("{}{path}", app.gateway_url()));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("gateway answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    app.db
        .connect()
        .await
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_identical_subscribes_with_one_key_charge_once_and_answer_alike() {
    let app = TestApp::spawn().await;
    let me = app
        .insert_user(&format!("payer{}", testkit::unique_suffix()))
        .await;
    let token = app.access_token_for(me);
    let body = json!({ "plan_id": "premium", "payment_method": "4242 4242 4242 4242" });
    let calls = (0..50).map(|_| {
        send(
            &app,
            Method::POST,
            "/api/v1/subscriptions",
            Some(&token),
            Some("order-1"),
            Some(body.clone()),
        )
    });
    let answers = futures::future::join_all(calls).await;
    let created: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == 201)
        .map(|(_, b)| b)
        .collect();
    for (status, body) in &answers {
        assert!(*status == 201 || *status == 409, "{status} {body}");
        if *status == 409 {
            assert_eq!(
                body["error"]["code"],
                json!("idempotency_key_in_use"),
                "{body}"
            );
        }
    }
    assert!(!created.is_empty());
    assert!(
        created.iter().all(|b| *b == created[0]),
        "one stored answer"
    );
    assert_eq!(created[0]["plan_id"], json!("premium"));
    assert_eq!(
        created[0]["price"],
        json!({ "amount_minor": 999, "currency": "USD" })
    );
    assert_eq!(created[0]["payment_method_last4"], json!("4242"));
    // A retry after the dust settles gets the same answer.
    let (status, again) = send(
        &app,
        Method::POST,
        "/api/v1/subscriptions",
        Some(&token),
        Some("order-1"),
        Some(body.clone()),
    )
    .await;
    assert_eq!((status, &again), (201, created[0]));

    assert_eq!(
        count(&app, "SELECT count(*) FROM payments.sandbox_charges").await,
        1
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM payments.journal WHERE kind = 'subscription_charge'"
        )
        .await,
        1
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM payments.subscriptions").await,
        1
    );

    // The same key for another request is refused; no key at all too.
    let other = json!({ "plan_id": "basic", "payment_method": "4242424242424242" });
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v1/subscriptions",
        Some(&token),
        Some("order-1"),
        Some(other.clone()),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], json!("idempotency_key_reused"));
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v1/subscriptions",
        Some(&token),
        None,
        Some(other.clone()),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // A second subscription is refused, and that answer is stored too.
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v1/subscriptions",
        Some(&token),
        Some("order-2"),
        Some(other),
    )
    .await;
    assert_eq!(status, 409, "{body}");

    // Cancel at period end, idempotently.
    let (status, sub) = send(
        &app,
        Method::GET,
        "/api/v1/me/subscription",
        Some(&token),
        None,
        None,
    )
    .await;
    assert_eq!((status, sub["status"].clone()), (200, json!("active")));
    for _ in 0..2 {
        let (status, sub) = send(
            &app,
            Method::DELETE,
            "/api/v1/me/subscription",
            Some(&token),
            Some("cancel-1"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{sub}");
        assert_eq!(sub["cancel_at_period_end"], json!(true));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_card_leaves_nothing_and_a_lost_answer_is_retried_into_one_charge() {
    let app = TestApp::spawn().await;
    let me = app
        .insert_user(&format!("payer{}", testkit::unique_suffix()))
        .await;
    let token = app.access_token_for(me);
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/v1/subscriptions",
        Some(&token),
        Some("declined-1"),
        Some(json!({ "plan_id": "basic", "payment_method": "4000000000000002" })),
    )
    .await;
    assert_eq!(status, 402, "{body}");
    assert_eq!(body["error"]["code"], json!("payment_declined"));
    assert_eq!(
        count(&app, "SELECT count(*) FROM payments.subscriptions").await,
        0
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM payments.postings").await,
        0
    );
    let (status, _) = send(
        &app,
        Method::GET,
        "/api/v1/me/subscription",
        Some(&token),
        None,
        None,
    )
    .await;
    assert_eq!(status, 404);
    // Bad cards and plans are the client's mistake.
    for (plan, card) in [
        ("basic", "1234"),
        ("basic", "4242424242424241"),
        ("nope", "4242424242424242"),
    ] {
        let (status, body) = send(
            &app,
            Method::POST,
            "/api/v1/subscriptions",
            Some(&token),
            Some(&format!("bad-{plan}-{card}")),
            Some(json!({ "plan_id": plan, "payment_method": card })),
        )
        .await;
        assert!(
            status == 400 || status == 404,
            "{plan} {card}: {status} {body}"
        );
    }

    // The provider charges but the answer is lost: retried with the same provider key.
    let (status, sub) = send(
        &app,
        Method::POST,
        "/api/v1/subscriptions",
        Some(&token),
        Some("timeout-1"),
        Some(json!({ "plan_id": "basic", "payment_method": "4000000000000119" })),
    )
    .await;
    assert_eq!(status, 201, "{sub}");
    let row = app
        .db
        .connect()
        .await
        .query_one(
            "SELECT count(*), max(attempts), min(status) FROM payments.sandbox_charges c
             JOIN payments.sandbox_cards k ON k.token = c.token WHERE k.last4 = '0119'",
            &[],
        )
        .await
        .expect("charges");
    assert_eq!(row.get::<_, i64>(0), 1, "one charge");
    assert_eq!(row.get::<_, Option<i32>>(1), Some(2), "two attempts");
    assert_eq!(
        row.get::<_, Option<String>>(2).as_deref(),
        Some("succeeded")
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM payments.journal WHERE kind = 'subscription_charge'"
        )
        .await,
        1
    );
    assert!(support::metric(&app, "payment_attempts_total{outcome=\"timeout\"}").await >= 1.0);
    // No card number is stored, declined ones included.
    let stored = count(
        &app,
        "SELECT count(*) FROM payments.subscriptions s FULL JOIN payments.sandbox_charges c ON FALSE
         WHERE s.payment_token LIKE '%4000000000000%' OR c.token LIKE '%4000000000000%'",
    )
    .await;
    assert_eq!(stored, 0);
    assert_eq!(
        support::metric(&app, "payment_attempts_total{outcome=\"declined\"}").await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posted_rows_cannot_change_and_an_unbalanced_transaction_cannot_commit() {
    let app = TestApp::builder()
        .only(&[testkit::ServiceName::Payments])
        .spawn()
        .await;
    let mut client = app.db.connect().await;
    let account = Uuid::new_v4();
    let other = Uuid::new_v4();
    let journal = Uuid::new_v4();
    client
        .batch_execute(&format!(
            "INSERT INTO payments.accounts (id, kind, currency) VALUES
                ('{account}', 'platform_revenue', 'USD'), ('{other}', 'provider_clearing', 'USD');
             BEGIN;
             INSERT INTO payments.journal (id, kind) VALUES ('{journal}', 'transfer');
             INSERT INTO payments.postings (journal_id, account_id, amount, currency) VALUES
                ('{journal}', '{account}', -5, 'USD'), ('{journal}', '{other}', 5, 'USD');
             COMMIT;"
        ))
        .await
        .expect("a balanced transaction commits");
    for sql in [
        format!("UPDATE payments.postings SET amount = 7 WHERE journal_id = '{journal}'"),
        format!("DELETE FROM payments.postings WHERE journal_id = '{journal}'"),
        format!("UPDATE payments.journal SET kind = 'payout' WHERE id = '{journal}'"),
        format!("DELETE FROM payments.journal WHERE id = '{journal}'"),
        "TRUNCATE payments.postings CASCADE".to_owned(),
    ] {
        let error = client.batch_execute(&sql).await.expect_err(&sql);
        assert!(
            error
                .as_db_error()
                .is_some_and(|e| e.message().contains("immutable")),
            "{sql}: {error}"
        );
    }
    let tx = client.transaction().await.expect("tx");
    let unbalanced = Uuid::new_v4();
    tx.batch_execute(&format!(
        "INSERT INTO payments.journal (id, kind) VALUES ('{unbalanced}', 'transfer');
         INSERT INTO payments.postings (journal_id, account_id, amount, currency) VALUES
            ('{unbalanced}', '{account}', -5, 'USD'), ('{unbalanced}', '{other}', 4, 'USD');"
    ))
    .await
    .expect("inserted; checked at commit");
    let error = tx.commit().await.expect_err("an unbalanced transaction");
    assert!(
        error.to_string().contains("does not balance")
            || format!("{error:?}").contains("does not balance"),
        "{error:?}"
    );
    // A posting in another currency than its account's is refused too.
    let wrong = Uuid::new_v4();
    let error = client
        .batch_execute(&format!(
            "BEGIN;
             INSERT INTO payments.journal (id, kind) VALUES ('{wrong}', 'transfer');
             INSERT INTO payments.postings (journal_id, account_id, amount, currency) VALUES
                ('{wrong}', '{account}', -5, 'EUR'), ('{wrong}', '{other}', 5, 'EUR');
             COMMIT;"
        ))
        .await
        .expect_err("currency mismatch");
    assert!(format!("{error:?}").contains("foreign key"), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revenue_counters_equal_the_ledger_after_subscriptions_ads_and_payouts() {
    let app = TestApp::builder()
        .env("SOCIALFLOW__PAYOUTS__MIN_PAYOUT_MINOR", "1")
        .spawn()
        .await;
    let admin = app.admin_token_for(
        app.insert_user(&format!("admin{}", testkit::unique_suffix()))
            .await,
    );
    let creator = app
        .insert_user(&format!("creator{}", testkit::unique_suffix()))
        .await;
    let creator_token = app.access_token_for(creator);
    let other_creator = app
        .insert_user(&format!("creator2{}", testkit::unique_suffix()))
        .await;
    let video = app
        .insert_owned_video(creator, "ready", "public", 100)
        .await;
    let other_video = app
        .insert_owned_video(other_creator, "ready", "public", 100)
        .await;

    // Admin routes need the role.
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/v1/admin/payouts/run",
        Some(&creator_token),
        Some("k"),
        None,
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/v1/admin/payouts/run",
        None,
        Some("k"),
        None,
    )
    .await;
    assert_eq!(status, 401);

    // Subscriptions: three users, two plans, one decline.
    for (i, (plan, card)) in [
        ("basic", "4242424242424242"),
        ("premium", "4242424242424242"),
        ("premium", "4000000000000119"),
        ("basic", "4000000000000002"),
    ]
    .iter()
    .enumerate()
    {
        let user = app
            .insert_user(&format!("sub{i}x{}", testkit::unique_suffix()))
            .await;
        let (status, body) = send(
            &app,
            Method::POST,
            "/api/v1/subscriptions",
            Some(&app.access_token_for(user)),
            Some("s"),
            Some(json!({ "plan_id": plan, "payment_method": card })),
        )
        .await;
        assert!(status == 201 || status == 402, "{status} {body}");
    }
    // Ad revenue for both creators' videos, in two currencies.
    let batch = json!({ "events": [
        { "video_id": video.to_string(), "kind": "impression", "amount_minor": 120, "currency": "USD" },
        { "video_id": video.to_string(), "kind": "click", "amount_minor": 300, "currency": "USD" },
        { "video_id": other_video.to_string(), "kind": "click", "amount_minor": 250, "currency": "EUR" },
    ]});
    for _ in 0..2 {
        let (status, body) = send(
            &app,
            Method::POST,
            "/api/v1/admin/ad-revenue",
            Some(&admin),
            Some("ads-1"),
            Some(batch.clone()),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["accepted"], json!(3));
    }
    let (status, body) = send(&app, Method::POST, "/api/v1/admin/ad-revenue", Some(&admin), Some("ads-2"), Some(json!({ "events": [{ "video_id": Uuid::new_v4().to_string(), "kind": "click", "amount_minor": 1, "currency": "USD" }] }))).await;
    assert_eq!(status, 400, "an unknown video: {body}");

    // Watch time: the creator's video is watched more.
    for (target, viewers) in [(video, 3), (other_video, 1)] {
        for n in 0..viewers {
            let viewer = app.access_token_for(
                app.insert_user(&format!("w{n}x{}", testkit::unique_suffix()))
                    .await,
            );
            let (status, _) = send(
                &app,
                Method::POST,
                &format!("/api/v1/videos/{target}/views"),
                Some(&viewer),
                None,
                Some(json!({ "watch_seconds": 60 })),
            )
            .await;
            assert_eq!(status, 200);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while count(
        &app,
        "SELECT coalesce(sum(views), 0)::bigint FROM engagement.video_stats",
    )
    .await
        < 4
    {
        assert!(Instant::now() < deadline, "views never flushed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, run) = send(
        &app,
        Method::POST,
        "/api/v1/admin/payouts/run",
        Some(&admin),
        Some("payouts-1"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["creators"], json!(2), "{run}");

    // The creator's statement: earned more than the other, all paid out.
    let (status, earnings) = send(
        &app,
        Method::GET,
        "/api/v1/me/earnings",
        Some(&creator_token),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{earnings}");
    let lines = earnings["lines"].as_array().expect("lines");
    assert!(!lines.is_empty(), "{earnings}");
    assert!(
        lines.iter().all(|l| l["watch_seconds"] == json!(180)),
        "{earnings}"
    );
    let (_, payouts) = send(
        &app,
        Method::GET,
        "/api/v1/me/payouts",
        Some(&creator_token),
        None,
        None,
    )
    .await;
    let paid: i64 = payouts["payouts"]
        .as_array()
        .expect("payouts")
        .iter()
        .map(|p| p["amount"]["amount_minor"].as_i64().expect("amount"))
        .sum();
    let earned: i64 = lines
        .iter()
        .map(|l| l["amount"]["amount_minor"].as_i64().expect("amount"))
        .sum();
    assert!(paid > 0 && paid == earned, "paid {paid}, earned {earned}");

    // The counters equal the ledger, per source and currency.
    let from = "2000-01-01T00:00:00Z";
    let to = (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (status, summary) = send(
        &app,
        Method::GET,
        &format!("/api/v1/admin/revenue?from={from}&to={to}"),
        Some(&admin),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{summary}");
    let exposition = support::metrics(&app).await;
    let mut seen = 0;
    for line in summary["lines"].as_array().expect("lines") {
        let (source, currency) = (
            line["source"].as_str().expect("source"),
            line["amount"]["currency"].as_str().expect("currency"),
        );
        let books = line["amount"]["amount_minor"].as_f64().expect("amount");
        let counted = support::metric_value(
            &exposition,
            &format!("revenue_total{{source=\"{source}\",currency=\"{currency}\"}}"),
        );
        assert_eq!(counted, books, "{source} {currency}");
        seen += 1;
    }
    assert_eq!(
        seen, 5,
        "subscriptions USD, ads USD and EUR, payouts USD and EUR: {summary}"
    );
    let sql_subscriptions = count(&app, "SELECT -sum(p.amount)::bigint FROM payments.postings p JOIN payments.journal j ON j.id = p.journal_id JOIN payments.accounts a ON a.id = p.account_id WHERE j.kind = 'subscription_charge' AND a.kind = 'platform_revenue'").await;
    assert_eq!(sql_subscriptions, 499 + 999 + 999);
    assert_eq!(
        support::metric_value(
            &exposition,
            "revenue_subscriptions_total{plan_id=\"premium\",currency=\"USD\"}"
        ),
        1998.0
    );
    assert_eq!(
        support::metric_value(&exposition, "revenue_ads_total{currency=\"USD\"}"),
        420.0
    );
    assert_eq!(
        support::metric_value(&exposition, "revenue_creator_payouts_total"),
        support::metric_value(&exposition, "revenue_total{source=\"creator_payout\"}")
    );
    support::wait_for_metric(&app, "ledger_imbalance", 0.0).await;
}
