//! An S3-compatible server per test: `s3s-fs` over a temporary directory.

use std::process::Stdio;
use std::time::Duration;

pub const ACCESS_KEY: &str = "socialflow-test";
pub const SECRET_KEY: &str = "socialflow-test-secret";

pub struct S3Server {
    port: u16,
    child: Option<tokio::process::Child>,
    _root: tempfile::TempDir,
}

fn binary() -> String {
    std::env::var("SOCIALFLOW_TEST_S3FS").unwrap_or_else(|_| "s3s-fs".to_owned())
}

impl S3Server {
    pub async fn start() -> Self {
        let root = tempfile::tempdir().expect("s3 root");
        let port = crate::free_port();
        let child = tokio::process::Command::new(binary())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start `{}` ({e}); install it with scripts/install-test-deps.sh",
                    binary()
                )
            });
        let server = Self {
            port,
            child: Some(child),
            _root: root,
        };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("s3s-fs did not start listening on port {port}");
    }

    /// Where the server keeps its buckets and its open multipart uploads.
    pub fn root(&self) -> &std::path::Path {
        self._root.path()
    }

    /// Settings that reach this server's `bucket`.
    pub fn settings(&self, bucket: &str) -> platform::config::S3Settings {
        platform::config::S3Settings {
            endpoint: self.endpoint(),
            region: "us-east-1".to_owned(),
            bucket: bucket.to_owned(),
            access_key: ACCESS_KEY.to_owned(),
            secret_key: SECRET_KEY.to_owned().into(),
            timeout_ms: 5_000,
        }
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops the server (the store becomes unreachable).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}
