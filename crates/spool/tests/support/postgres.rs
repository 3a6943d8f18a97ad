//! PostgreSQL locations: a schema of its own, written raw through sqlx.

use std::sync::Arc;

use spool::{Store, store::postgres::PostgresStore};
use spool_conformance::{Raw, Value};
use sqlx::{Connection, PgConnection};
use tokio::sync::OnceCell;

use super::{Fresh, Location, is_leftover, unique_name, unreachable, with_param};

/// The server: `SPOOL_TEST_POSTGRES_URL`, else the local test database.
pub(crate) fn postgres_url() -> String {
    std::env::var("SPOOL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A new schema (not created until a store migrates it); `None` when the server is
/// unreachable outside CI.
pub(crate) async fn postgres() -> Option<Fresh> {
    let base = postgres_url();
    let name = unique_name();
    match PostgresStore::open_in_schema(&base, &name).await {
        Ok(_) => {}
        Err(e) if e.is_unavailable() => return unreachable("postgres", &base, &e),
        Err(e) => panic!(
            "cannot open PostgreSQL at {base}: {e}; set SPOOL_TEST_POSTGRES_URL to a database the tests may use"
        ),
    }
    SWEPT.get_or_init(|| drop_leftover_schemas(&base)).await;
    let url = with_param(&base, &format!("spool_schema={name}"));
    Some(Fresh {
        url,
        backend: "postgres",
        location: Location::Schema { base, name },
    })
}

pub(super) async fn open(base: &str, schema: &str) -> Arc<dyn Store> {
    Arc::new(
        PostgresStore::open_in_schema(base, schema)
            .await
            .expect("open the PostgreSQL store"),
    )
}

static SWEPT: OnceCell<()> = OnceCell::const_new();

/// Drops the test schemas earlier runs left behind. Best effort: another test process may be
/// doing the same, so failures are reported and ignored.
async fn drop_leftover_schemas(url: &str) {
    let mut conn = match PgConnection::connect(url).await {
        Ok(conn) => conn,
        Err(e) => return eprintln!("cannot drop leftover test schemas: {e}"),
    };
    let names: Vec<String> = match sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname::text, $1)",
    )
    .bind(super::PREFIX)
    .fetch_all(&mut conn)
    .await
    {
        Ok(names) => names,
        Err(e) => return eprintln!("cannot list leftover test schemas: {e}"),
    };
    for name in names.into_iter().filter(|n| is_leftover(n)) {
        // The name came from the catalogue and matched our own pattern: plain identifier.
        let drop = format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE");
        if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
            .execute(&mut conn)
            .await
        {
            eprintln!("cannot drop leftover test schema {name}: {e}");
        }
    }
    let _ = conn.close().await;
}

/// A connection with the schema first on the search path, so plain table names reach it.
async fn connect(base: &str, schema: &str) -> Result<PgConnection, String> {
    let mut conn = PgConnection::connect(base)
        .await
        .map_err(|e| e.to_string())?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "SET search_path TO \"{schema}\""
    )))
    .execute(&mut conn)
    .await
    .map_err(|e| e.to_string())?;
    Ok(conn)
}

pub(super) async fn raw(base: &str, schema: &str, write: Raw) -> Result<(), String> {
    let mut conn = connect(base, schema).await?;
    let done = match write {
        Raw::Sql { statement, binds } if binds.is_empty() => {
            sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                .execute(&mut conn)
                .await
        }
        Raw::Sql { statement, binds } => {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(statement));
            for value in binds {
                query = match value {
                    Value::Null => query.bind(None::<String>),
                    Value::Int(n) => query.bind(n),
                    Value::Text(s) => query.bind(s),
                    Value::Bytes(b) => query.bind(b),
                };
            }
            query.execute(&mut conn).await
        }
        Raw::SchemaVersion(version) => {
            sqlx::query("INSERT INTO spool_migrations (version, applied_at) VALUES ($1, 0)")
                .bind(version)
                .execute(&mut conn)
                .await
        }
        Raw::Redis(_) => return Err("PostgreSQL takes SQL, not Redis commands".into()),
    };
    let _ = conn.close().await;
    done.map(|_| ()).map_err(|e| e.to_string())
}

pub(super) async fn schema_version(base: &str, schema: &str) -> i64 {
    let mut conn = connect(base, schema).await.expect("connect");
    let version: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM spool_migrations")
        .fetch_one(&mut conn)
        .await
        .expect("read the schema version");
    version.unwrap_or(0)
}

/// The schema as version 1 left it: its tables, version 1 recorded, and one job queued.
pub(super) async fn write_version_1(base: &str, schema: &str, job_id: &str) -> Result<(), String> {
    let quoted = format!("\"{schema}\"");
    let mut conn = PgConnection::connect(base)
        .await
        .map_err(|e| e.to_string())?;
    let v1 = include_str!("../../src/store/postgres/sql/schema.sql").replace("{schema}", &quoted);
    let setup = format!(
        "CREATE SCHEMA {quoted};
         CREATE TABLE {quoted}.spool_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL);
         {v1}
         INSERT INTO {quoted}.spool_migrations VALUES (1, 0);"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(setup))
        .execute(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {quoted}.jobs (id, queue, job, envelope, available_at, created_at)
         VALUES ($1, 'default', 'noop', '{{}}', 0, 0)"
    )))
    .bind(job_id)
    .execute(&mut conn)
    .await
    .map_err(|e| e.to_string())?;
    let _ = conn.close().await;
    Ok(())
}
