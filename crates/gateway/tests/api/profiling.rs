//! CPU profiles on the admin port: a pprof payload or an SVG, bounded, one at a time, and
//! nothing at all unless turned on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use prost::Message as _;
use testkit::{ServiceName, TestApp};

/// Keeps one core busy until the returned flag is set (at most `for_how_long`), so the
/// profile has stacks to show however loaded the machine is.
fn burn(for_how_long: Duration) -> (std::thread::JoinHandle<u64>, Arc<AtomicBool>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let handle = std::thread::spawn(move || {
        let end = Instant::now() + for_how_long;
        let mut x: u64 = 1;
        while Instant::now() < end && !flag.load(Ordering::Relaxed) {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
        }
        x
    });
    (handle, stop)
}

async fn profile(app: &TestApp, query: &str) -> reqwest::Response {
    app.admin_get(ServiceName::User, &format!("/debug/pprof/profile{query}"))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_second_profile_is_a_pprof_payload_or_a_flame_graph_and_only_one_runs_at_once() {
    let app = TestApp::builder()
        .env("SOCIALFLOW__SERVER__PROFILING", "true")
        .only(&[ServiceName::User])
        .spawn()
        .await;

    let (busy, stop) = burn(Duration::from_secs(30));
    let response = profile(&app, "?seconds=1").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/octet-stream"
    );
    let body = response.bytes().await.expect("body");
    let pprof = proto::pprof::Profile::decode(body).expect("a pprof protobuf");
    stop.store(true, Ordering::Relaxed);
    let _ = busy.join();
    assert_eq!(pprof.string_table.first().map(String::as_str), Some(""));
    let name = |i: i64| pprof.string_table[usize::try_from(i).expect("index")].as_str();
    let types: Vec<(&str, &str)> = pprof
        .sample_type
        .iter()
        .map(|t| (name(t.r#type), name(t.unit)))
        .collect();
    assert_eq!(types, [("samples", "count"), ("cpu", "nanoseconds")]);
    assert!(!pprof.sample.is_empty(), "a busy second has samples");
    assert!(
        pprof.duration_nanos >= 900_000_000,
        "{}",
        pprof.duration_nanos
    );
    for sample in &pprof.sample {
        for id in &sample.location_id {
            assert!(
                pprof.location.iter().any(|l| l.id == *id),
                "dangling location {id}"
            );
        }
    }

    let (busy, stop) = burn(Duration::from_secs(30));
    let response = profile(&app, "?seconds=1&format=flamegraph").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/svg+xml");
    let svg = response.text().await.expect("svg");
    stop.store(true, Ordering::Relaxed);
    let _ = busy.join();
    assert!(svg.contains("<svg"), "{}", &svg[..svg.len().min(200)]);

    // One at a time: the profiler is one per process.
    let first = tokio::spawn({
        let http = app.http.clone();
        let url = format!(
            "{}/debug/pprof/profile?seconds=2",
            app.admin_url(ServiceName::User)
        );
        async move { http.get(url).send().await.expect("admin answers").status() }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = profile(&app, "?seconds=1").await;
    assert_eq!(second.status(), 409);
    assert_eq!(first.await.expect("joined"), 200);

    for bad in ["?seconds=0", "?seconds=61", "?seconds=x", "?format=png"] {
        assert_eq!(profile(&app, bad).await.status(), 400, "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_profiling_turned_on_there_is_no_profile_route() {
    let app = TestApp::builder().only(&[ServiceName::User]).spawn().await;
    assert_eq!(profile(&app, "?seconds=1").await.status(), 404);
}
