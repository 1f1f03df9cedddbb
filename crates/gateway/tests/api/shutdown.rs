use std::process::Stdio;
use std::time::{Duration, Instant};

use testkit::{ServiceName, TestApp, free_port};

/// The real gateway binary, configured through the environment like in production, in
/// front of the in-process services.
fn spawn_gateway(app: &TestApp, port: u16, admin_port: u16) -> tokio::process::Child {
    let service = |name| format!("http://{}", app.api_addr(name));
    tokio::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SOCIALFLOW__SERVER__HOST", "127.0.0.1")
        .env("SOCIALFLOW__SERVER__PORT", port.to_string())
        .env("SOCIALFLOW__SERVER__ADMIN_PORT", admin_port.to_string())
        .env("SOCIALFLOW__SERVER__SHUTDOWN_GRACE_SECS", "15")
        // The development JWT key is fine here; the services need the app's internal key.
        .env("SOCIALFLOW__AUTH__ALLOW_DEVELOPMENT_KEY", "true")
        .env(
            "SOCIALFLOW__AUTH__INTERNAL_TOKEN_SECRET",
            &app.internal_token_secret,
        )
        .env("SOCIALFLOW__DATABASE__URL", app.db.url())
        .env("SOCIALFLOW__S3__ENDPOINT", app.s3.endpoint())
        .env("SOCIALFLOW__S3__BUCKET", &app.bucket)
        .env("SOCIALFLOW__REDIS__KEY_PREFIX", &app.redis_prefix)
        // Load from one address is not abuse here.
        .env("SOCIALFLOW__RATE_LIMIT__ANONYMOUS__PER_MINUTE", "1000000")
        .env("SOCIALFLOW__RATE_LIMIT__ANONYMOUS__BURST", "1000000")
        .env("SOCIALFLOW__SERVICES__USER", service(ServiceName::User))
        .env("SOCIALFLOW__SERVICES__VIDEO", service(ServiceName::Video))
        .env(
            "SOCIALFLOW__SERVICES__ENGAGEMENT",
            service(ServiceName::Engagement),
        )
        .env(
            "SOCIALFLOW__SERVICES__PAYMENTS",
            service(ServiceName::Payments),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("gateway binary starts")
}

async fn readiness(http: &reqwest::Client, admin_port: u16) -> Option<u16> {
    http.get(format!("http://127.0.0.1:{admin_port}/health/readiness"))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_slow_request_finish_turns_readiness_503_and_exits_0() {
    // Every chunk video-service sends to engagement-service waits 700 ms: GET of a video
    // takes seconds.
    let app = TestApp::builder()
        .engagement_delay(Duration::from_millis(700))
        .spawn()
        .await;
    let video_id = app.insert_video("Slow", "ready").await;
    app.set_video_stats(video_id, 7, 3).await;
    let (port, admin_port) = (free_port(), free_port());
    let mut gateway = spawn_gateway(&app, port, admin_port);

    let deadline = Instant::now() + Duration::from_secs(30);
    while readiness(&app.http, admin_port).await != Some(200) {
        assert!(Instant::now() < deadline, "gateway never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let http = app.http.clone();
    let slow = tokio::spawn(async move {
        let started = Instant::now();
        let response = http
            .get(format!("http://127.0.0.1:{port}/api/v1/videos/{video_id}"))
            .send()
            .await
            .expect("the in-flight request is answered");
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.expect("json");
        (status, body, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !slow.is_finished(),
        "the request must still be in flight when SIGTERM arrives"
    );

    let pid = gateway.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());

    // A client without pooled connections: every request below opens a new one.
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(1))
        .build()
        .expect("client");
    let (mut saw_503, mut saw_refused) = (false, false);
    while !slow.is_finished() {
        if readiness(&app.http, admin_port).await == Some(503) {
            saw_503 = true;
        }
        if saw_503
            && !saw_refused
            && fresh
                .get(format!("http://127.0.0.1:{port}/health"))
                .send()
                .await
                .is_err()
        {
            saw_refused = true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(saw_503, "readiness answered 503 while the request drained");
    assert!(
        saw_refused,
        "new connections were refused while the request drained"
    );

    let (status, body, took) = slow.await.expect("request task");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stats"]["views"], 7, "the slow hop completed: {body}");
    assert!(took > Duration::from_millis(500));

    let exit = tokio::time::timeout(Duration::from_secs(20), gateway.wait())
        .await
        .expect("gateway exits within the grace period")
        .expect("exit status");
    assert_eq!(exit.code(), Some(0));

    // Its stdout was JSON log lines all along, ending with a clean stop.
    let output = gateway.wait_with_output().await.expect("output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "shutdown requested" && l["signal"] == "SIGTERM")
    );
    assert!(lines.iter().any(|l| l["message"] == "stopped cleanly"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_setting_fails_start_with_one_line_naming_the_key() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .env("SOCIALFLOW__SERVER__PORT", "0")
        .env("SOCIALFLOW__SERVER__ADMIN_PORT", "0")
        .env("SOCIALFLOW__SERVICES__VIDEO", "not a url")
        .env("SOCIALFLOW__AUTH__ALLOW_DEVELOPMENT_KEY", "true")
        .output()
        .await
        .expect("gateway binary runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("services.video"), "{stderr}");

    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .env("SOCIALFLOW__SERVER__PORT", "eighty")
        .output()
        .await
        .expect("gateway binary runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("server.port"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_healthcheck_subcommand_exits_0_when_ready_and_1_when_nothing_answers() {
    let app = TestApp::spawn().await;
    let ready_port = app
        .admin_url(ServiceName::Video)
        .rsplit(':')
        .next()
        .expect("port")
        .to_owned();
    for (port, expected) in [(ready_port, 0), (free_port().to_string(), 1)] {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
            .arg("healthcheck")
            .env("SOCIALFLOW__SERVER__ADMIN_PORT", &port)
            .env("SOCIALFLOW__AUTH__ALLOW_DEVELOPMENT_KEY", "true")
            .output()
            .await
            .expect("healthcheck runs");
        assert_eq!(
            output.status.code(),
            Some(expected),
            "port {port}: {}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_steady_load_fails_no_accepted_request_and_exits_0() {
    let app = TestApp::spawn().await;
    let video_id = app.insert_video("Busy", "ready").await;
    let (port, admin_port) = (free_port(), free_port());
    let mut gateway = spawn_gateway(&app, port, admin_port);
    // Its log lines are read as they come (a full pipe would stall the process's logging).
    let mut stdout = gateway.stdout.take().expect("piped stdout");
    let drained = tokio::spawn(async move {
        let mut all = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut stdout, &mut all).await;
        String::from_utf8_lossy(&all).into_owned()
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while readiness(&app.http, admin_port).await != Some(200) {
        assert!(Instant::now() < deadline, "gateway never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Eight clients keep asking until the gateway is gone: every answer they get must be a
    // 200; a request the gateway no longer accepts fails to connect, which is fine.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let stop = stop.clone();
        let url = format!("http://127.0.0.1:{port}/api/v1/videos/{video_id}");
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client");
            let (mut answered, mut not_accepted, mut bad) = (0u32, 0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match http.get(&url).send().await {
                    Ok(response) if response.status() == 200 => answered += 1,
                    Ok(response) => bad.push(response.status().as_u16()),
                    Err(_) => {
                        not_accepted += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            (answered, not_accepted, bad)
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let pid = gateway.id().expect("pid").to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs")
            .success()
    );
    let sent = Instant::now();
    let mut flipped = None;
    while flipped.is_none() && sent.elapsed() < Duration::from_secs(5) {
        match readiness(&app.http, admin_port).await {
            Some(503) | None => flipped = Some(sent.elapsed()),
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    let flipped = flipped.expect("readiness flipped");
    assert!(
        flipped < Duration::from_secs(1),
        "readiness flipped at once: {flipped:?}"
    );
    let exit = tokio::time::timeout(Duration::from_secs(20), gateway.wait())
        .await
        .expect("gateway exits within the grace period")
        .expect("exit status");
    assert_eq!(exit.code(), Some(0));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut answered = 0;
    for client in clients {
        let (ok, _, bad) = client.await.expect("client task");
        assert!(bad.is_empty(), "accepted requests failed: {bad:?}");
        answered += ok;
    }
    assert!(answered > 8, "the load was real: {answered} answers");
    let log = drained.await.expect("drained");
    assert!(log.contains("stopped cleanly"), "a clean stop is logged");
}
