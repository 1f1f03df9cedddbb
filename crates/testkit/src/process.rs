//! A service as its real binary, started next to a [`crate::TestApp`] with the app's
//! settings, for tests of what only a whole process does: draining on SIGTERM, exiting 0.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::{ServiceName, TestApp};

pub struct ServiceProcess {
    child: tokio::process::Child,
    pub name: ServiceName,
    pub grpc: SocketAddr,
    pub admin: SocketAddr,
    output: tokio::task::JoinHandle<String>,
}

impl ServiceName {
    /// The binary's name.
    pub fn binary(self) -> &'static str {
        match self {
            ServiceName::User => "user-service",
            ServiceName::Video => "video-service",
            ServiceName::Engagement => "engagement-service",
            ServiceName::Payments => "payments-service",
            ServiceName::Gateway => "gateway",
        }
    }
}

/// A workspace binary beside the running test executable (`target/<profile>/<name>`). Tests
/// build only the binaries of packages with integration tests: `make test-faults` runs
/// `cargo build --workspace --bins` first.
pub fn workspace_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let profile_dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target/<profile>/deps/<test>");
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: `cargo build --workspace --bins` first (make test-faults does)",
        path.display()
    );
    path
}

impl ServiceProcess {
    /// Starts `name`'s binary with `app`'s settings on ports of its own and waits until it
    /// is ready. Its output is read as it comes (a full pipe would stall it).
    pub async fn start(app: &TestApp, name: ServiceName) -> Self {
        let (grpc_port, admin_port) = (crate::free_port(), crate::free_port());
        let mut command = tokio::process::Command::new(workspace_binary(name.binary()));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(app.settings_env())
            .env(platform::config::CONFIG_DIR_VAR, "/nonexistent")
            .env("SOCIALFLOW__SERVER__HOST", "127.0.0.1")
            .env("SOCIALFLOW__SERVER__PORT", grpc_port.to_string())
            .env("SOCIALFLOW__SERVER__ADMIN_PORT", admin_port.to_string())
            .env("SOCIALFLOW__TELEMETRY__OTLP_ENDPOINT", "")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("service binary starts");
        let (mut stdout, mut stderr) = (
            child.stdout.take().expect("stdout"),
            child.stderr.take().expect("stderr"),
        );
        let output = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let _ = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
            out.extend_from_slice(&err);
            String::from_utf8_lossy(&out).into_owned()
        });
        let process = Self {
            child,
            name,
            grpc: SocketAddr::from(([127, 0, 0, 1], grpc_port)),
            admin: SocketAddr::from(([127, 0, 0, 1], admin_port)),
            output,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while process.readiness(&app.http).await != Some(200) {
            assert!(
                Instant::now() < deadline,
                "{} never became ready",
                name.binary()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        process
    }

    /// The status of `/health/readiness`, or None when nothing answers.
    pub async fn readiness(&self, http: &reqwest::Client) -> Option<u16> {
        http.get(format!("http://{}/health/readiness", self.admin))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16())
    }

    pub fn sigterm(&self) {
        let pid = self.child.id().expect("running").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM to {pid}");
    }

    /// Waits for the exit (at most `within`): its code, and everything it printed.
    pub async fn exit(mut self, within: Duration) -> (Option<i32>, String) {
        let status = tokio::time::timeout(within, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not exit within {within:?}", self.name.binary()))
            .expect("exit status");
        let output = self.output.await.expect("output");
        (status.code(), output)
    }
}
