//! The Postgres pool, the migration runner and the span every query runs in.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use secrecy::ExposeSecret;
use tokio_postgres::NoTls;
use tracing::Instrument;

use crate::config::{ConfigError, DatabaseSettings};

pub use deadpool_postgres::{Object as Connection, Pool as PgPool, PoolError};

/// Builds the pool. Connections open lazily; a wrong URL fails here, an unreachable server
/// on first use (and in readiness).
pub fn pool(settings: &DatabaseSettings) -> Result<Pool, ConfigError> {
    let mut pg: tokio_postgres::Config = settings
        .url
        .expose_secret()
        .parse()
        .map_err(|e| ConfigError::invalid("database.url", e))?;
    pg.connect_timeout(Duration::from_millis(settings.connect_timeout_ms));
    pg.options(format!(
        "-c statement_timeout={}",
        settings.statement_timeout_ms
    ));
    pg.application_name(telemetry::service_info().map_or("socialflow", |i| i.name.as_str()));
    let manager = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    // Without a wait timeout `pool.get()` waits forever when the pool is exhausted.
    let timeouts = Timeouts {
        wait: Some(Duration::from_millis(settings.acquire_timeout_ms)),
        create: Some(Duration::from_millis(settings.connect_timeout_ms)),
        recycle: Some(Duration::from_millis(settings.connect_timeout_ms)),
    };
    Pool::builder(manager)
        .max_size(settings.max_connections)
        .timeouts(timeouts)
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| ConfigError::invalid("database", e))
}

/// A child span for one database operation, named `{operation} {table}` as the semantic
/// conventions ask; run the query inside it with `.instrument(db_span(..))`.
pub fn db_span(operation: &'static str, table: &'static str) -> tracing::Span {
    tracing::info_span!(
        "db.query",
        otel.name = %format!("{operation} {table}"),
        otel.kind = "client",
        db.system.name = "postgresql",
        db.system = "postgresql",
        db.operation.name = operation,
        db.collection.name = table,
    )
}

/// The pool, with every query run as a prepared (cached) statement inside its own
/// [`db_span`]. Stores use this instead of the pool directly.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
}

type Params<'a> = &'a [&'a (dyn tokio_postgres::types::ToSql + Sync)];

impl Db {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// All rows of `sql`; `operation` and `table` name the span (`SELECT videos.videos`).
    pub async fn query(
        &self,
        operation: &'static str,
        table: &'static str,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Vec<tokio_postgres::Row>, DbError> {
        async {
            let conn = self.pool.get().await?;
            let stmt = conn.prepare_cached(sql).await?;
            Ok(conn.query(&stmt, params).await?)
        }
        .instrument(db_span(operation, table))
        .await
    }

    /// Runs a statement; the number of rows it touched.
    pub async fn execute(
        &self,
        operation: &'static str,
        table: &'static str,
        sql: &str,
        params: Params<'_>,
    ) -> Result<u64, DbError> {
        async {
            let conn = self.pool.get().await?;
            let stmt = conn.prepare_cached(sql).await?;
            Ok(conn.execute(&stmt, params).await?)
        }
        .instrument(db_span(operation, table))
        .await
    }

    /// The row of `sql`, if any (an error if there are several).
    pub async fn query_opt(
        &self,
        operation: &'static str,
        table: &'static str,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Option<tokio_postgres::Row>, DbError> {
        async {
            let conn = self.pool.get().await?;
            let stmt = conn.prepare_cached(sql).await?;
            Ok(conn.query_opt(&stmt, params).await?)
        }
        .instrument(db_span(operation, table))
        .await
    }

    /// The row `sql` must return (an `INSERT … RETURNING`, say).
    pub async fn query_one(
        &self,
        operation: &'static str,
        table: &'static str,
        sql: &str,
        params: Params<'_>,
    ) -> Result<tokio_postgres::Row, DbError> {
        self.query_opt(operation, table, sql, params)
            .await?
            .ok_or(DbError::NoRow)
    }
}

/// One schema migration, embedded in the service binary.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("no database connection for migrations: {0}")]
    Pool(#[from] PoolError),
    #[error("migration {version} ({name}) of schema {schema} failed: {source}")]
    Apply {
        schema: String,
        version: i64,
        name: &'static str,
        source: tokio_postgres::Error,
    },
    #[error("migrating schema {schema} failed: {source}")]
    Bookkeeping {
        schema: String,
        source: tokio_postgres::Error,
    },
}

/// Brings `schema` up to date. Everything runs in one transaction holding an advisory lock
/// keyed by the schema name, so replicas starting together apply each migration once: the
/// second waits, then finds nothing left to do.
pub async fn migrate(
    pool: &Pool,
    schema: &str,
    migrations: &[Migration],
) -> Result<Vec<i64>, MigrationError> {
    let bookkeeping = |source| MigrationError::Bookkeeping {
        schema: schema.to_owned(),
        source,
    };
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await.map_err(bookkeeping)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext($1))",
        &[&format!("socialflow-migrate:{schema}")],
    )
    .await
    .map_err(bookkeeping)?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
             version    BIGINT PRIMARY KEY,
             name       TEXT NOT NULL,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         );"
    ))
    .await
    .map_err(bookkeeping)?;
    let applied: Vec<i64> = tx
        .query(
            &format!("SELECT version FROM {schema}.schema_migrations"),
            &[],
        )
        .await
        .map_err(bookkeeping)?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut newly = Vec::new();
    for m in migrations.iter().filter(|m| !applied.contains(&m.version)) {
        tx.batch_execute(m.sql)
            .await
            .map_err(|source| MigrationError::Apply {
                schema: schema.to_owned(),
                version: m.version,
                name: m.name,
                source,
            })?;
        tx.execute(
            &format!("INSERT INTO {schema}.schema_migrations (version, name) VALUES ($1, $2)"),
            &[&m.version, &m.name],
        )
        .await
        .map_err(bookkeeping)?;
        newly.push(m.version);
    }
    tx.commit().await.map_err(bookkeeping)?;
    if !newly.is_empty() {
        tracing::info!(schema, versions = ?newly, "migrations applied");
    }
    Ok(newly)
}

/// `SELECT 1` through the pool: the readiness and `/health/detailed` probe.
pub async fn ping(pool: &Pool) -> Result<(), String> {
    async {
        let conn = pool.get().await.map_err(|e| e.to_string())?;
        conn.simple_query("SELECT 1")
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }
    // Debug level: probes run every few seconds and would each become a trace of their own.
    .instrument(tracing::debug_span!("db.ping"))
    .await
}

/// Publishes `database_connections_active{service}` (connections checked out) every few
/// seconds until the process stops.
pub fn spawn_pool_gauge(pool: Pool, service: &'static str) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            let status = pool.status();
            let in_use = status.size.saturating_sub(status.available);
            metrics::gauge!(telemetry::metrics::DATABASE_CONNECTIONS_ACTIVE, "service" => service)
                .set(in_use as f64);
            metrics::gauge!(telemetry::metrics::DATABASE_CONNECTIONS_MAX, "service" => service)
                .set(status.max_size as f64);
        }
    });
}

/// A failure talking to Postgres, mapped to gRPC once for every service.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("no database connection available")]
    Pool(#[from] PoolError),
    #[error("database query failed")]
    Query(#[from] tokio_postgres::Error),
    #[error("the query returned no row where one was certain")]
    NoRow,
}

impl DbError {
    /// The SQLSTATE of a failed query, e.g. `23505` for a unique violation.
    pub fn sqlstate(&self) -> Option<&tokio_postgres::error::SqlState> {
        match self {
            Self::Query(e) => e.code(),
            Self::Pool(_) | Self::NoRow => None,
        }
    }

    /// The constraint a failed query violated.
    pub fn constraint(&self) -> Option<&str> {
        match self {
            Self::Query(e) => e.as_db_error().and_then(|d| d.constraint()),
            Self::Pool(_) | Self::NoRow => None,
        }
    }
}

impl From<DbError> for tonic::Status {
    fn from(e: DbError) -> Self {
        let request_id = telemetry::RequestContext::current()
            .map(|c| c.request_id().to_owned())
            .unwrap_or_default();
        // Text with a NUL character: Postgres cannot store it (`22021`). The client's
        // fault, whichever field it was in.
        if let DbError::Query(q) = &e
            && q.code() == Some(&tokio_postgres::error::SqlState::CHARACTER_NOT_IN_REPERTOIRE)
        {
            tracing::warn!(client_error = true, error = %e.source_or_self(), "text the database cannot store");
            return tonic::Status::invalid_argument(
                "text must not contain NUL (U+0000) characters",
            );
        }
        // The full chain goes to the log once; clients get a generic message and the
        // request id to quote.
        tracing::error!(error = %e.source_or_self(), "database failure");
        match e {
            DbError::Pool(_) => tonic::Status::unavailable(format!(
                "the database is unavailable; try again (request {request_id})"
            )),
            // statement_timeout: the database did not answer in time.
            DbError::Query(q)
                if q.code() == Some(&tokio_postgres::error::SqlState::QUERY_CANCELED) =>
            {
                tonic::Status::deadline_exceeded(format!(
                    "the database did not answer in time (request {request_id})"
                ))
            }
            // The connection broke (Postgres restarting, the connection killed): a retry
            // on another connection will do, once Postgres is back.
            DbError::Query(q) if is_connection_failure(&q) => tonic::Status::unavailable(format!(
                "the database is unavailable; try again (request {request_id})"
            )),
            DbError::Query(_) | DbError::NoRow => {
                tonic::Status::internal(format!("internal error (request {request_id})"))
            }
        }
    }
}

/// Whether a query failed because its connection did (closed, an I/O error, Postgres
/// shutting down or not accepting connections) rather than because of the query.
fn is_connection_failure(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(code) = e.code() {
        let code = code.code();
        return code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03");
    }
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        if inner.is::<std::io::Error>() {
            return true;
        }
        source = inner.source();
    }
    false
}

impl DbError {
    fn source_or_self(&self) -> String {
        match self {
            Self::Pool(e) => format!("{self}: {e}"),
            Self::Query(e) => match e.as_db_error() {
                Some(db) => format!("{self}: {}: {}", db.code().code(), db.message()),
                None => format!("{self}: {e}"),
            },
            Self::NoRow => self.to_string(),
        }
    }
}
