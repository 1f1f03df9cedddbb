//! A service's background workers, as the platform runs them: started once migrations
//! ran, part of readiness, and drained on shutdown (the path SIGTERM takes in `main`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use platform::config::InternalAuthSettings;
use platform::config::Sources;
use platform::service::{Parts, Shared};
use platform::worker::Worker;
use testkit::TestDatabase;
use tonic::service::Routes;

/// Jobs the worker finished, and what it was doing when told to drain.
static FINISHED: AtomicU32 = AtomicU32::new(0);
static LOG: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

fn log(event: &'static str) {
    LOG.lock().expect("log").push(event);
}

// A service with no RPCs of its own and one worker that takes a job every 20 ms, each
// taking 300 ms, and finishes the one it holds when told to drain.
platform::grpc_service! {
    struct Jobs: "jobs-test", schema "jobs_test", build build,
    defaults "[server]\nport = 0\nadmin_port = 0\n",
    settings { auth: InternalAuthSettings },
    migrations []
}

async fn build(_: &Settings, _: &Shared) -> anyhow::Result<Parts> {
    {
        let worker = Worker::new("jobs", |mut draining| async move {
            loop {
                tokio::select! {
                    () = draining.wait() => break,
                    () = tokio::time::sleep(Duration::from_millis(20)) => {}
                }
                log("job started");
                // Work in hand is finished even if draining begins meanwhile.
                tokio::time::sleep(Duration::from_millis(300)).await;
                FINISHED.fetch_add(1, Ordering::SeqCst);
                log("job finished");
            }
            log("drained");
            Ok(())
        });
        Ok(Parts::new(Routes::default()).with_worker(worker))
    }
}

fn sources(db: &TestDatabase) -> Sources {
    let env: HashMap<String, String> = [
        ("SOCIALFLOW__DATABASE__URL", db.url()),
        ("SOCIALFLOW__AUTH__ALLOW_DEVELOPMENT_KEY", "true"),
        ("SOCIALFLOW__SERVER__SHUTDOWN_GRACE_SECS", "5"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    Sources {
        config_dir: std::path::PathBuf::from("/nonexistent"),
        env_name: "test".into(),
        env,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_counts_in_readiness_and_finishes_its_job_when_the_service_drains() {
    testkit::telemetry();
    let db = TestDatabase::create().await;
    let settings = platform::service::load::<Jobs>(&sources(&db)).expect("settings");
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let admin = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    admin.set_nonblocking(true).expect("non-blocking");
    let admin_url = format!("http://{}", admin.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let service = tokio::spawn(platform::service::run::<Jobs>(
        settings,
        platform::grpc::Listeners { grpc, admin },
        async move {
            let _ = stopped.await;
        },
    ));

    let http = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(r) = http
            .get(format!("{admin_url}/health/readiness"))
            .send()
            .await
            && r.status() == 200
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "the service became ready");
    let detailed: serde_json::Value = http
        .get(format!("{admin_url}/health/detailed"))
        .send()
        .await
        .expect("admin answers")
        .json()
        .await
        .expect("json");
    assert_eq!(
        detailed["checks"]["worker:jobs"]["status"], "healthy",
        "{detailed}"
    );

    // Shut down while a job is in hand.
    loop {
        let holding = LOG.lock().expect("log").last() == Some(&"job started");
        if holding {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let before = FINISHED.load(Ordering::SeqCst);
    stop.send(()).expect("service running");
    let outcome = tokio::time::timeout(Duration::from_secs(10), service)
        .await
        .expect("drained within the grace period")
        .expect("joined");
    assert!(outcome.is_ok(), "a clean stop: {outcome:?}");
    assert_eq!(
        FINISHED.load(Ordering::SeqCst),
        before + 1,
        "the job in hand was finished"
    );
    let log = LOG.lock().expect("log").clone();
    assert_eq!(log.last(), Some(&"drained"), "{log:?}");
    assert_eq!(
        log.iter().rev().nth(1),
        Some(&"job finished"),
        "no new job once draining began: {log:?}"
    );
}
