//! The migration runner against a real Postgres database of its own.

use deadpool_postgres::Pool;
use platform::config::DatabaseSettings;
use platform::database::{Migration, migrate, pool};
use tokio_postgres::NoTls;

fn admin_url() -> String {
    std::env::var("SOCIALFLOW_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

struct Database {
    name: String,
}

impl Database {
    async fn create() -> (Self, Pool) {
        let name = format!("sf_platform_{}", uuid::Uuid::new_v4().simple());
        let (client, conn) = tokio_postgres::connect(&admin_url(), NoTls)
            .await
            .expect("postgres");
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create");
        let settings = DatabaseSettings {
            url: format!(
                "{}/{name}",
                admin_url().rsplit_once('/').map_or("", |(base, _)| base)
            )
            .into(),
            max_connections: 4,
            acquire_timeout_ms: 5000,
            connect_timeout_ms: 5000,
            statement_timeout_ms: 10000,
        };
        (Self { name }, pool(&settings).expect("pool"))
    }

    async fn drop(self) {
        let (client, conn) = tokio_postgres::connect(&admin_url(), NoTls)
            .await
            .expect("postgres");
        tokio::spawn(conn);
        client
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await
            .expect("drop");
    }
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "things",
        sql: "CREATE TABLE demo.things (id BIGINT PRIMARY KEY)",
    },
    Migration {
        version: 2,
        name: "thing_names",
        sql: "ALTER TABLE demo.things ADD COLUMN name TEXT NOT NULL DEFAULT ''",
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_migrating_at_once_apply_each_migration_exactly_once() {
    let (db, pool) = Database::create().await;
    let (a, b) = tokio::join!(
        migrate(&pool, "demo", MIGRATIONS),
        migrate(&pool, "demo", MIGRATIONS)
    );
    let (a, b) = (a.expect("first replica"), b.expect("second replica"));
    let mut applied = [a.clone(), b.clone()];
    applied.sort();
    assert_eq!(
        applied,
        [vec![], vec![1, 2]],
        "one replica applied both, the other none"
    );

    let conn = pool.get().await.expect("conn");
    let rows: i64 = conn
        .query_one("SELECT count(*) FROM demo.schema_migrations", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(rows, 2);
    // A restart finds nothing to do.
    assert_eq!(
        migrate(&pool, "demo", MIGRATIONS).await.expect("rerun"),
        Vec::<i64>::new()
    );
    drop(conn);
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_migration_leaves_the_schema_untouched_and_names_itself() {
    let (db, pool) = Database::create().await;
    let broken = [
        MIGRATIONS[0],
        Migration {
            version: 2,
            name: "broken",
            sql: "ALTER TABLE demo.nothing ADD COLUMN x INT",
        },
    ];
    let err = migrate(&pool, "demo", &broken)
        .await
        .expect_err("broken migration");
    assert!(err.to_string().contains("migration 2 (broken)"), "{err}");
    let conn = pool.get().await.expect("conn");
    let exists: bool = conn
        .query_one("SELECT to_regclass('demo.things') IS NOT NULL", &[])
        .await
        .expect("query")
        .get(0);
    assert!(!exists, "the whole run rolled back, migration 1 included");
    drop(conn);
    db.drop().await;
}
