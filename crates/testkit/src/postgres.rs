//! A database per test, dropped afterwards.

use tokio_postgres::NoTls;

fn admin_url() -> String {
    std::env::var("SOCIALFLOW_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A fresh, empty database; dropped (with its connections) when this value is.
pub struct TestDatabase {
    name: String,
    url: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let name = format!("sf_test_{}", crate::unique_suffix());
        let admin = admin_url();
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
        Self { name, url }
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
        // Drop runs outside any async context we could await in: use a private runtime on a
        // plain thread.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            runtime.block_on(async move {
                let Ok((client, connection)) = tokio_postgres::connect(&admin_url(), NoTls).await
                else {
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
