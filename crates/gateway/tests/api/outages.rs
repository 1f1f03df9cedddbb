//! Whole processes and whole dependencies failing under load: each service told to stop
//! (SIGTERM) while clients keep calling it, Postgres stopped and started again under the
//! gateway's traffic, and twice the load the gateway can serve. `make test-faults` runs these
//! with the other long fault tests (`reliability`, `shutdown`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use platform::identity::Caller;
use serde_json::Value;
use testkit::process::ServiceProcess;
use testkit::{OwnCluster, ServiceName, TestApp};

type Call =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), tonic::Status>> + Send>> + Send + Sync>;

/// One read RPC of `name` (each touches the service's own store), on a channel to `process`.
async fn read_call(
    app: &TestApp,
    process: &ServiceProcess,
    user: uuid::Uuid,
    video: uuid::Uuid,
) -> Call {
    use proto::engagement::v1::engagement_service_client::EngagementServiceClient;
    use proto::payments::v1::payments_service_client::PaymentsServiceClient;
    use proto::user::v1::user_service_client::UserServiceClient;
    use proto::video::v1::video_service_client::VideoServiceClient;
    let channel = app.channel_at(process.grpc, Caller::User(user)).await;
    match process.name {
        ServiceName::User => {
            let client = UserServiceClient::new(channel);
            Arc::new(move || {
                let mut client = client.clone();
                Box::pin(async move {
                    let request = proto::user::v1::GetUserRequest {
                        id: user.to_string(),
                    };
                    client.get_user(request).await.map(drop)
                })
            })
        }
        ServiceName::Video => {
            let client = VideoServiceClient::new(channel);
            Arc::new(move || {
                let mut client = client.clone();
                Box::pin(async move {
                    let request = proto::video::v1::GetVideoRequest {
                        id: video.to_string(),
                    };
                    client.get_video(request).await.map(drop)
                })
            })
        }
        ServiceName::Engagement => {
            let client = EngagementServiceClient::new(channel);
            Arc::new(move || {
                let mut client = client.clone();
                Box::pin(async move {
                    let request = proto::engagement::v1::GetTrendingRequest { limit: 5 };
                    client.get_trending(request).await.map(drop)
                })
            })
        }
        ServiceName::Payments => {
            let client = PaymentsServiceClient::new(channel);
            Arc::new(move || {
                let mut client = client.clone();
                Box::pin(async move {
                    let request = proto::payments::v1::ListPlansRequest {};
                    client.list_plans(request).await.map(drop)
                })
            })
        }
        ServiceName::Gateway => unreachable!("the gateway binary has its own test (shutdown)"),
    }
}

/// A call the process never took: the connection was refused, or closed before the call was
/// sent on it (hyper's `Canceled`), or the stream refused: `REFUSED_STREAM`, or above the
/// last stream id of a graceful `GOAWAY` (`NO_ERROR`), which HTTP/2 says the server did not
/// process. An error of the transport, not an answer of the service; a call cut off
/// mid-answer is none of these.
fn not_accepted(status: &tonic::Status) -> bool {
    let Some(source) = std::error::Error::source(status) else {
        return false;
    };
    let cause = format!("{source:?}");
    let refused = ["ConnectionRefused", "Canceled", "REFUSED_STREAM"]
        .iter()
        .any(|c| cause.contains(c))
        && matches!(
            status.code(),
            tonic::Code::Unavailable | tonic::Code::Cancelled
        );
    let above_goaway = cause.contains("GoAway(") && cause.contains("NO_ERROR, Remote");
    refused || above_goaway
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_to_each_service_under_load_fails_no_accepted_call_and_exits_0() {
    let app = TestApp::spawn().await;
    let user = app.insert_user("draining").await;
    let video = app.insert_video("Draining", "ready").await;
    for name in [
        ServiceName::User,
        ServiceName::Video,
        ServiceName::Engagement,
        ServiceName::Payments,
    ] {
        let process = ServiceProcess::start(&app, name).await;
        let call = read_call(&app, &process, user, video).await;
        let stop = Arc::new(AtomicBool::new(false));
        let mut clients = Vec::new();
        for _ in 0..8 {
            let (stop, call) = (stop.clone(), call.clone());
            clients.push(tokio::spawn(async move {
                let (mut answered, mut refused, mut failed) = (0u32, 0u32, Vec::new());
                while !stop.load(Ordering::Relaxed) {
                    match call().await {
                        Ok(()) => answered += 1,
                        Err(status) if not_accepted(&status) => {
                            refused += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Err(status) => failed.push(status),
                    }
                }
                (answered, refused, failed)
            }));
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
        process.sigterm();
        let sent = Instant::now();
        loop {
            match process.readiness(&app.http).await {
                Some(503) | None => break,
                _ => {
                    assert!(
                        sent.elapsed() < Duration::from_secs(1),
                        "{name:?}: readiness still 200 a second after SIGTERM"
                    );
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
        let (code, output) = process.exit(Duration::from_secs(20)).await;
        stop.store(true, Ordering::Relaxed);
        let mut answered = 0;
        for client in clients {
            let (ok, _, failed) = client.await.expect("client");
            assert!(
                failed.is_empty(),
                "{name:?}: calls it accepted failed: {failed:?}"
            );
            answered += ok;
        }
        assert_eq!(code, Some(0), "{name:?} exit code; it printed:\n{output}");
        assert!(
            answered > 8,
            "{name:?}: the load was real ({answered} answers)"
        );
        assert!(
            output.contains("stopped cleanly"),
            "{name:?} logs a clean stop:\n{output}"
        );
    }
}

/// One request of an open-loop load: when it was due (from the start), how long it took,
/// and its status (None: no answer at all).
struct Sample {
    due: Duration,
    took: Duration,
    /// From the moment it was sent (`took` counts from when it was due).
    answered_in: Duration,
    status: Option<u16>,
    code: String,
    retry_after: bool,
}

/// `rate` requests per second of `GET url` from `start` until `stop`, each sent when due
/// whatever the others do (open loop), each with a 30 s client timeout.
fn open_loop(
    url: String,
    rate: u32,
    start: Instant,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<Sample>> {
    tokio::spawn(async move {
        // Idle connections are dropped before actix's 5 s keep-alive closes them: reusing one
        // the server is closing at that moment fails before any request is sent (a race of
        // the client's, not an answer).
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(2))
            .build()
            .expect("client");
        let interval = Duration::from_secs(1) / rate;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::from_std(start), interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut requests = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let due = tick.tick().await.into_std();
            let (http, url) = (http.clone(), url.clone());
            requests.push(tokio::spawn(async move {
                let sent = Instant::now();
                let (status, code, retry_after) = match http.get(&url).send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let retry_after = response.headers().contains_key("retry-after");
                        let body: Value = response.json().await.unwrap_or(Value::Null);
                        let code = body["error"]["code"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned();
                        (Some(status), code, retry_after)
                    }
                    Err(e) => (None, format!("{e:?}"), false),
                };
                Sample {
                    due: due - start,
                    took: due.elapsed(),
                    answered_in: sent.elapsed(),
                    status,
                    code,
                    retry_after,
                }
            }));
        }
        let mut samples = Vec::with_capacity(requests.len());
        for request in requests {
            samples.push(request.await.expect("request task"));
        }
        samples
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_and_started_under_load_fails_fast_and_recovers_within_five_seconds() {
    let cluster = OwnCluster::start().await;
    let app = TestApp::builder()
        .postgres(cluster.admin_url())
        // Every read must reach Postgres: the gateway's cache would answer most.
        .env("SOCIALFLOW__CACHE__VIDEO_TTL_MS", "0")
        .spawn()
        .await;
    let video = app.insert_video("Restart", "ready").await;
    let url = format!("{}/api/v1/videos/{video}", app.gateway_url());
    assert_eq!(
        app.http.get(&url).send().await.expect("answer").status(),
        200
    );

    const RATE: u32 = 50;
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let load = open_loop(url, RATE, start, stop.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;

    cluster.stop().await;
    let down = start.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let video_admin = app.admin_url(ServiceName::Video);
    let readiness = app
        .http
        .get(format!("{video_admin}/health/readiness"))
        .send()
        .await
        .expect("admin answers")
        .status();
    assert_eq!(
        readiness, 503,
        "video-service is not ready without Postgres"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    cluster.start_again().await;
    let up = start.elapsed();
    tokio::time::sleep(Duration::from_secs(7)).await;
    stop.store(true, Ordering::Relaxed);
    let samples = load.await.expect("load");

    // Every request had an answer, none later than its deadline (the gateway's 5 s to
    // video-service) allows, and every failure was a JSON 503 or 504.
    let deadline = Duration::from_secs(5) + Duration::from_millis(500);
    let mut failures = 0;
    for s in &samples {
        assert!(
            s.took < deadline,
            "a request took {:?} (due at {:?})",
            s.took,
            s.due
        );
        match s.status {
            Some(200) => {}
            Some(503 | 504) => {
                failures += 1;
                assert!(!s.code.is_empty(), "a {:?} without a JSON error", s.status);
                assert!(
                    s.due + s.took >= down,
                    "a failure before Postgres stopped: {:?} at {:?}",
                    s.status,
                    s.due
                );
            }
            other => panic!("answer {other:?} ({}) at {:?}", s.code, s.due),
        }
    }
    assert!(failures > 0, "the outage was seen");

    // Back to the full rate within 5 s of Postgres accepting connections: from then on,
    // every request succeeds, so each second serves the whole offered load.
    let recovered = samples
        .iter()
        .rev()
        .take_while(|s| s.status == Some(200))
        .last()
        .map(|s| s.due)
        .expect("successes at the end");
    eprintln!(
        "{failures} failed requests while Postgres was down; all succeed from {:?} after it was back",
        recovered.saturating_sub(up)
    );
    assert!(
        recovered <= up + Duration::from_secs(5),
        "Postgres was back at {up:?}; every request since succeeded only from {recovered:?}"
    );
    let last_second = samples
        .iter()
        .filter(|s| s.due >= up + Duration::from_secs(5) && s.due < up + Duration::from_secs(6))
        .filter(|s| s.status == Some(200))
        .count();
    assert!(
        last_second as f64 >= 0.95 * f64::from(RATE),
        "{last_second} successes in the sixth second after recovery at {RATE}/s offered"
    );
}

/// The `q` quantile of `values` (sorted here).
fn quantile(mut values: Vec<Duration>, q: f64) -> Duration {
    values.sort();
    let index = ((values.len() as f64 - 1.0) * q).round() as usize;
    values.get(index).copied().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_twice_the_measured_saturation_rate_the_excess_is_shed_with_fast_503s() {
    const IN_FLIGHT: usize = 16;
    let app = TestApp::builder()
        .env("SOCIALFLOW__HTTP__MAX_IN_FLIGHT", &IN_FLIGHT.to_string())
        // The whole read path (three processes, Postgres, Redis) is what saturates here.
        .env("SOCIALFLOW__CACHE__VIDEO_TTL_MS", "0")
        .spawn()
        .await;
    let video = app.insert_video("Popular", "ready").await;
    let url = format!("{}/api/v1/videos/{video}", app.gateway_url());

    // Saturation: as many clients as the gateway admits at once, each asking again as soon
    // as it has an answer, for 2 s.
    let measuring = Duration::from_secs(2);
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..IN_FLIGHT {
        let (http, url) = (app.http.clone(), url.clone());
        clients.push(tokio::spawn(async move {
            let mut served = 0u32;
            while started.elapsed() < measuring {
                let response = http.get(&url).send().await.expect("answer");
                served += u32::from(response.status() == 200);
            }
            served
        }));
    }
    let mut served = 0;
    for client in clients {
        served += client.await.expect("client");
    }
    let saturation = (f64::from(served) / started.elapsed().as_secs_f64()).max(10.0);

    // Twice that, offered at a fixed rate for 3 s.
    let rate = (2.0 * saturation) as u32;
    let stop = Arc::new(AtomicBool::new(false));
    let load = open_loop(url, rate, Instant::now(), stop.clone());
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let samples = load.await.expect("load");

    let (mut admitted, mut shed) = (Vec::new(), Vec::new());
    for s in &samples {
        match s.status {
            Some(200) => admitted.push(s.answered_in),
            Some(503) => {
                assert_eq!(s.code, "overloaded", "a 503 that is not shedding");
                assert!(s.retry_after, "a shed request without Retry-After");
                shed.push(s.answered_in);
            }
            other => panic!("{other:?} ({}) under overload", s.code),
        }
    }
    let (admitted_p50, shed_p50, shed_p99) = (
        quantile(admitted.clone(), 0.5),
        quantile(shed.clone(), 0.5),
        quantile(shed.clone(), 0.99),
    );
    eprintln!(
        "saturation {saturation:.0}/s; at {rate}/s: {} admitted (p50 {admitted_p50:?}), {} shed (p50 {shed_p50:?}, p99 {shed_p99:?})",
        admitted.len(),
        shed.len()
    );
    assert!(
        !shed.is_empty(),
        "twice the saturation rate was shed in part"
    );
    assert!(
        admitted.len() as f64 >= saturation,
        "the gateway kept serving"
    );
    // Shedding costs no call to anything: it answers before the admitted requests do.
    assert!(
        shed_p50 < admitted_p50,
        "shed answers are fast: p50 {shed_p50:?} vs {admitted_p50:?} admitted"
    );
}
