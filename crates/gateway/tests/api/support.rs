//! Helpers shared by the account, follow and security tests: accounts and sessions over
//! the REST API, JSON error checks, and reading counters out of `/metrics`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::{ServiceName, TestApp};

/// An account created through `POST /api/v1/auth/register`.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: String,
    pub username: String,
    pub email: String,
    pub password: String,
    /// The private profile the registration answered with.
    pub profile: Value,
}

/// A strong password, unique to this call, that does not contain `username`.
pub fn strong_password(username: &str) -> String {
    loop {
        let password = format!(
            "Sf-{}-{}",
            testkit::unique_suffix(),
            testkit::unique_suffix()
        );
        if !password.to_lowercase().contains(&username.to_lowercase()) {
            return password;
        }
    }
}

/// Registers `username` (email `<username>@example.com`) with a fresh strong password.
pub async fn register(app: &TestApp, username: &str) -> Account {
    let email = format!("{username}@example.com");
    let password = strong_password(username);
    let response = app
        .post_json(
            "/api/v1/auth/register",
            &json!({
                "email": email,
                "username": username,
                "password": password,
                "display_name": format!("{username} display"),
            }),
        )
        .await;
    let status = response.status().as_u16();
    let profile: Value = response.json().await.expect("registration answers JSON");
    assert_eq!(status, 201, "registering {username}: {profile}");
    Account {
        id: text(&profile, "id"),
        username: username.to_owned(),
        email,
        password,
        profile,
    }
}

/// `POST /api/v1/auth/login`, whatever the answer.
pub async fn try_login(app: &TestApp, login: &str, password: &str) -> reqwest::Response {
    app.post_json(
        "/api/v1/auth/login",
        &json!({ "login": login, "password": password }),
    )
    .await
}

/// Logs in and returns the token body; fails the test unless it is 200.
pub async fn login(app: &TestApp, login: &str, password: &str) -> Value {
    let response = try_login(app, login, password).await;
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("login answers JSON");
    assert_eq!(status, 200, "login as {login}: {body}");
    body
}

/// Logs `account` in by username and returns its access token.
pub async fn access_token(app: &TestApp, account: &Account) -> String {
    text(
        &login(app, &account.username, &account.password).await,
        "access_token",
    )
}

/// `POST /api/v1/auth/refresh`, whatever the answer.
pub async fn refresh(app: &TestApp, refresh_token: &str) -> reqwest::Response {
    app.post_json(
        "/api/v1/auth/refresh",
        &json!({ "refresh_token": refresh_token }),
    )
    .await
}

/// The value of an `Authorization` header carrying `token`.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A request to the gateway with `Authorization: Bearer <token>`.
pub fn authed(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
) -> reqwest::RequestBuilder {
    app.http
        .request(method, format!("{}{path}", app.gateway_url()))
        .header(reqwest::header::AUTHORIZATION, bearer(token))
}

/// `GET /api/v1/me` with `token`.
pub async fn me(app: &TestApp, token: &str) -> reqwest::Response {
    authed(app, reqwest::Method::GET, "/api/v1/me", token)
        .send()
        .await
        .expect("gateway answers")
}

/// A string field of a JSON body; fails the test when it is missing.
pub fn text(body: &Value, key: &str) -> String {
    body[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string `{key}` in {body}"))
        .to_owned()
}

/// Asserts a JSON error answer with `status` and `code`, and returns its body.
pub async fn expect_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    let actual = response.status().as_u16();
    let body: Value = response
        .json()
        .await
        .unwrap_or_else(|e| panic!("expected a JSON {status} error, the body is not JSON: {e}"));
    assert_eq!(actual, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    body
}

/// Asserts the answer to a request without valid credentials: 401, code
/// `unauthenticated`, and a `WWW-Authenticate: Bearer` challenge.
pub async fn expect_unauthenticated(response: reqwest::Response) -> Value {
    let challenge = response
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().expect("ascii header").to_owned());
    let body = expect_error(response, 401, "unauthenticated").await;
    assert!(
        challenge
            .as_deref()
            .is_some_and(|c| c.starts_with("Bearer")),
        "a 401 challenges with WWW-Authenticate: Bearer, got {challenge:?}: {body}"
    );
    body
}

/// Asserts a 429 from the rate limiter: code `rate_limited` and `Retry-After` in whole
/// seconds, at least 1. Returns the Retry-After value.
pub async fn expect_rate_limited(response: reqwest::Response) -> u64 {
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .map(|v| v.to_str().expect("ascii header").to_owned());
    let body = expect_error(response, 429, "rate_limited").await;
    let seconds: u64 = retry_after
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            panic!("Retry-After must be whole seconds, got {retry_after:?}: {body}")
        });
    assert!(seconds >= 1, "Retry-After {seconds}");
    seconds
}

/// The `x-request-id` the gateway answered with.
pub fn request_id(response: &reqwest::Response) -> String {
    response.headers()["x-request-id"]
        .to_str()
        .expect("ascii request id")
        .to_owned()
}

/// The number of rows in `users.users`.
pub async fn user_rows(app: &TestApp) -> i64 {
    app.db
        .connect()
        .await
        .query_one("SELECT count(*) FROM users.users", &[])
        .await
        .expect("count users")
        .get(0)
}

/// Waits (10 s at most) for a captured log line matching `predicate`.
pub async fn wait_for_log(what: &str, predicate: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(line) = testkit::telemetry()
            .logs
            .lines()
            .into_iter()
            .find(|l| predicate(l))
        {
            return line;
        }
        assert!(Instant::now() < deadline, "no log line {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One sample line of the Prometheus text format.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Parses `name{k="v",...} value`; label values may hold `{`, `}`, `,` and escapes.
fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = line[..name_end].to_owned();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(body) = rest.strip_prefix('{') {
        rest = body;
        loop {
            rest = rest.trim_start();
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after_key) = rest.split_once("=\"")?;
            let mut value = String::new();
            let mut chars = after_key.char_indices();
            let end = loop {
                let (i, c) = chars.next()?;
                match c {
                    '\\' => {
                        let (_, escaped) = chars.next()?;
                        value.push(if escaped == 'n' { '\n' } else { escaped });
                    }
                    '"' => break i + 1,
                    c => value.push(c),
                }
            };
            labels.push((key.trim().to_owned(), value));
            rest = &after_key[end..];
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
    }
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// Every sample of an exposition; a line that does not parse fails the test.
pub fn samples(exposition: &str) -> Vec<Sample> {
    exposition
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| parse_sample(l).unwrap_or_else(|| panic!("unparseable metrics line: {l}")))
        .collect()
}

/// The sum of every series matching `selector` (`name` or `name{label="value",...}`, the
/// labels a subset of the series' labels, in any order); 0 when there is none.
pub fn metric_value(exposition: &str, selector: &str) -> f64 {
    let wanted =
        parse_sample(&format!("{selector} 0")).unwrap_or_else(|| panic!("bad selector {selector}"));
    samples(exposition)
        .iter()
        .filter(|s| {
            s.name == wanted.name
                && wanted
                    .labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
        })
        .map(|s| s.value)
        .sum()
}

/// The shared registry's `/metrics` (every in-process service renders the same one).
pub async fn metrics(app: &TestApp) -> String {
    let response = app.admin_get(ServiceName::Gateway, "/metrics").await;
    assert_eq!(response.status(), 200);
    response.text().await.expect("metrics body")
}

/// The current value of `selector` on `/metrics`.
pub async fn metric(app: &TestApp, selector: &str) -> f64 {
    metric_value(&metrics(app).await, selector)
}

/// Polls `/metrics` (10 s at most) until `selector` sums to `expected`.
pub async fn wait_for_metric(app: &TestApp, selector: &str, expected: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let value = metric(app, selector).await;
        if value == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{selector} is {value}, expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs `promtool check metrics` on an exposition, as Prometheus' own linter.
pub fn promtool_check(exposition: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is needed for this test; scripts/install-test-deps.sh installs it");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(exposition.as_bytes())
        .expect("write metrics");
    let output = child.wait_with_output().expect("promtool runs");
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
