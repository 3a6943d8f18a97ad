//! SQLite locations: a file in a temp directory, written raw through rusqlite.

use std::{path::Path, sync::Arc, time::Duration};

use spool::{Store, store::sqlite::SqliteStore};
use spool_conformance::{Raw, Value};

use super::{Fresh, Location};

/// The database file's name inside a location's directory.
pub(crate) const SQLITE_FILE: &str = "spool.db";

pub(crate) async fn sqlite() -> Option<Fresh> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(SQLITE_FILE);
    let url = format!("sqlite://{}", path.display());
    Some(Fresh {
        url,
        backend: "sqlite",
        location: Location::Sqlite { path, _dir: dir },
    })
}

/// A fresh, migrated SQLite store and its directory (the file is [`SQLITE_FILE`] in it), for
/// tests that need only that. The directory outlives the test: the store keeps the file open.
pub(crate) async fn sqlite_store() -> (Arc<dyn Store>, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir").keep();
    let url = format!("sqlite://{}", dir.join(SQLITE_FILE).display());
    let store = spool::connect(&url).await.expect("open a SQLite store");
    (store, dir)
}

pub(super) async fn open(url: &str) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(url).await.expect("open the SQLite store"))
}

/// Runs `f` on a connection of its own to the file, off the async threads.
async fn with_conn<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
) -> Result<T, String> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let conn = rusqlite::Connection::open(&path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        f(&conn)
    })
    .await
    .expect("the SQLite task ran")
    .map_err(|e| e.to_string())
}

fn value(v: Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match v {
        Value::Null => V::Null,
        Value::Int(n) => V::Integer(n),
        Value::Text(s) => V::Text(s),
        Value::Bytes(b) => V::Blob(b),
    }
}

pub(super) async fn raw(path: &Path, write: Raw) -> Result<(), String> {
    match write {
        Raw::Sql { statement, binds } if binds.is_empty() => {
            with_conn(path, move |conn| conn.execute_batch(&statement)).await
        }
        Raw::Sql { statement, binds } => {
            let binds: Vec<_> = binds.into_iter().map(value).collect();
            with_conn(path, move |conn| {
                conn.execute(&statement, rusqlite::params_from_iter(binds))
                    .map(|_| ())
            })
            .await
        }
        Raw::SchemaVersion(version) => {
            with_conn(path, move |conn| {
                conn.execute(
                    "INSERT INTO spool_migrations (version, applied_at) VALUES (?1, 0)",
                    [version],
                )
                .map(|_| ())
            })
            .await
        }
        Raw::Redis(_) => Err("SQLite takes SQL, not Redis commands".into()),
    }
}

pub(super) async fn schema_version(path: &Path) -> i64 {
    with_conn(path, |conn| {
        conn.query_row("SELECT MAX(version) FROM spool_migrations", [], |row| {
            row.get::<_, Option<i64>>(0)
        })
    })
    .await
    .expect("read the schema version")
    .unwrap_or(0)
}

pub(super) async fn write_version_1(path: &Path, job_id: &str) -> Result<(), String> {
    let job_id = job_id.to_string();
    with_conn(path, move |conn| {
        conn.execute_batch(
            "CREATE TABLE spool_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);",
        )?;
        conn.execute_batch(include_str!("../../src/store/sqlite/sql/schema.sql"))?;
        conn.execute_batch("INSERT INTO spool_migrations VALUES (1, 0);")?;
        conn.execute(
            "INSERT INTO spool_jobs (id, queue, job, envelope, available_at, created_at)
             VALUES (?1, 'default', 'noop', '{}', 0, 0)",
            [job_id],
        )
        .map(|_| ())
    })
    .await
}
