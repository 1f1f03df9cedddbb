//! A database per test, dropped afterwards.

use tokio_postgres::NoTls;

fn default_admin_url() -> String {
    std::env::var("SOCIALFLOW_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A fresh, empty database; dropped (with its connections) when this value is.
pub struct TestDatabase {
    name: String,
    url: String,
    /// The server's maintenance database, where this one is created and dropped.
    admin: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        Self::create_at(&default_admin_url()).await
    }

    /// A fresh database on the server of `admin` (a URL ending in `/<database>`).
    pub async fn create_at(admin: &str) -> Self {
        let name = format!("sf_test_{}", crate::unique_suffix());
        let admin = admin.to_owned();
        let (client, connection) = tokio_postgres::connect(&admin, NoTls)
            .await
            .unwrap_or_else(|e| panic!("Postgres at {admin} is needed for tests: {e}"));
        tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        let url = match admin.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("SOCIALFLOW_TEST_PG must end in /<database>"),
        };
        Self { name, url, admin }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// A direct connection, for fixtures and assertions.
    pub async fn connect(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url, NoTls)
            .await
            .expect("connect to test database");
        tokio::spawn(connection);
        client
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        let admin = self.admin.clone();
        // Drop runs outside any async context we could await in: use a private runtime on a
        // plain thread.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            runtime.block_on(async move {
                let Ok((client, connection)) = tokio_postgres::connect(&admin, NoTls).await else {
                    return;
                };
                tokio::spawn(connection);
                let _ = client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            });
        })
        .join();
        if dropped.is_err() {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

/// A Postgres server of the test's own (`initdb` into a temporary directory, its own port),
/// for tests that stop and restart it. `initdb` and `pg_ctl` refuse to run as root: as root,
/// they run as the `postgres` user (`runuser`). Stopped when dropped.
pub struct OwnCluster {
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    port: u16,
}

impl OwnCluster {
    /// `initdb` and a first start (about 2 s); panics naming what is missing.
    pub async fn start() -> Self {
        let bin = pg_bindir();
        let dir = tempfile::Builder::new()
            .prefix("sf-pg-")
            .tempdir()
            .expect("temporary directory");
        if is_root() {
            let status = std::process::Command::new("chown")
                .args(["-R", "postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(
                status.success(),
                "chown of {} to postgres",
                dir.path().display()
            );
        }
        let cluster = Self {
            port: crate::free_port(),
            bin,
            dir,
        };
        cluster
            .run(
                "initdb",
                &[
                    "-D",
                    &cluster.data(),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                ],
            )
            .await;
        cluster.start_again().await;
        cluster
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn options(&self) -> String {
        // fsync off: the data is a test's; the socket directory is the cluster's own.
        format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100",
            self.port,
            self.dir.path().display()
        )
    }

    /// Starts the server and returns once it accepts connections.
    pub async fn start_again(&self) {
        let log = self.dir.path().join("server.log").display().to_string();
        let options = self.options();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        )
        .await;
    }

    /// Stops the server at once (`-m immediate`: connections are cut, as by a crash).
    pub async fn stop(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        )
        .await;
    }

    async fn run(&self, program: &str, args: &[&str]) {
        let output = tokio::process::Command::from(self.command(program, args))
            .output()
            .await
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn command(&self, program: &str, args: &[&str]) -> std::process::Command {
        let path = self.bin.join(program);
        let mut command = if is_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            std::process::Command::new(path)
        };
        command.args(args);
        command
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .command("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"])
            .output();
    }
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// Where `initdb` and `pg_ctl` are: `SOCIALFLOW_PG_BIN`, else the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian's layout).
fn pg_bindir() -> std::path::PathBuf {
    if let Ok(dir) = std::env::var("SOCIALFLOW_PG_BIN") {
        return dir.into();
    }
    let mut found: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!("initdb and pg_ctl are needed (Debian's postgresql package, or SOCIALFLOW_PG_BIN)")
    })
}
