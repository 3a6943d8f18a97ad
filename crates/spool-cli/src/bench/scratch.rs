//! The bench's store: never `./spool.db`. Without `--url`, a fresh SQLite file in a temporary
//! directory; with a `sqlite://` URL, that file, wiped first (only if it does not exist yet
//! or its name contains `bench`); with `postgres://`, a dedicated
//! `spool_bench` schema in that database, dropped and recreated for every run; with `mysql://`,
//! the URL's database (whose name must contain `bench`), dropped and recreated for every run;
//! with `redis://`, the keys under a prefix containing `bench` (default `spool_bench`),
//! deleted before every run.

use std::{path::PathBuf, sync::Arc};

use crate::CliError;
use spool::{Store, store::connect};

pub(crate) struct Scratch {
    /// The URL both the bench and its worker process open.
    pub(crate) url: String,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) backend: &'static str,
    /// PostgreSQL only: the URL as given (without `spool_schema`), whose [`PG_SCHEMA`] holds
    /// the store; the dashboard bench seeds its records there in bulk.
    pub(crate) postgres_url: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl Scratch {
    pub(crate) async fn new(url: Option<&str>, run: usize) -> Result<Scratch, CliError> {
        let postgres_url = url
            .filter(|u| spool::store::backend_for_url(u).ok() == Some("postgres"))
            .map(str::to_string);
        let (url, dir) = match url {
            None => {
                let dir = tempfile::Builder::new().prefix("spool-bench-").tempdir()?;
                let url = format!(
                    "sqlite://{}",
                    dir.path().join(format!("bench-{run}.db")).display()
                );
                (url, Some(dir))
            }
            // The scheme picks the store; an unknown one is refused with the accepted forms,
            // never taken for PostgreSQL.
            Some(url) => match spool::store::backend_for_url(url)? {
                "sqlite" => (sqlite_scratch(url)?, None),
                "mysql" => (mysql_scratch(url).await?, None),
                "redis" => (redis_scratch(url).await?, None),
                _ => (postgres_scratch(url).await?, None),
            },
        };
        let store = connect(&url).await?;
        let backend = store.backend();
        Ok(Scratch {
            url,
            store,
            backend,
            postgres_url,
            _dir: dir,
        })
    }
}

/// A `sqlite:` URL's file, wiped first (only if it does not exist yet or its name contains
/// `bench`).
fn sqlite_scratch(url: &str) -> Result<String, CliError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let path = PathBuf::from(rest.split_once('?').map_or(rest, |(path, _)| path));
    let named_bench = path
        .file_name()
        .is_some_and(|f| f.to_string_lossy().contains("bench"));
    if path.exists() && !named_bench {
        return Err(CliError::Usage(format!(
            "refusing to wipe {}: the bench recreates its database for every run; \
             point --url at a file whose name contains `bench`",
            path.display()
        )));
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
    Ok(url.to_string())
}

/// The PostgreSQL bench's schema.
pub(crate) const PG_SCHEMA: &str = "spool_bench";

#[cfg(feature = "postgres")]
async fn postgres_scratch(url: &str) -> Result<String, CliError> {
    spool::store::postgres::PostgresStore::drop_schema(url, PG_SCHEMA).await?;
    let sep = if url.contains('?') { '&' } else { '?' };
    Ok(format!("{url}{sep}spool_schema={PG_SCHEMA}"))
}

#[cfg(not(feature = "postgres"))]
async fn postgres_scratch(_url: &str) -> Result<String, CliError> {
    Err(spool::store::StoreError::NotCompiled("postgres").into())
}

#[cfg(feature = "mysql")]
async fn mysql_scratch(url: &str) -> Result<String, CliError> {
    use spool::store::mysql::{MysqlStore, database_in_url};
    let database = database_in_url(url)?.unwrap_or_default();
    if !database.contains("bench") {
        return Err(CliError::Usage(format!(
            "refusing to wipe MySQL database `{database}`: the bench recreates its database for \
             every run; point --url at a database whose name contains `bench`"
        )));
    }
    MysqlStore::drop_database(url, &database).await?;
    MysqlStore::create_database(url, &database).await?;
    Ok(url.to_string())
}

#[cfg(not(feature = "mysql"))]
async fn mysql_scratch(_url: &str) -> Result<String, CliError> {
    Err(spool::store::StoreError::NotCompiled("mysql").into())
}

#[cfg(feature = "redis")]
async fn redis_scratch(url: &str) -> Result<String, CliError> {
    const PREFIX: &str = "spool_bench";
    let named = spool::store::redis::prefix_in_url(url)?;
    let (url, prefix) = match named {
        Some(prefix) if prefix.contains("bench") => (url.to_string(), prefix.to_string()),
        Some(prefix) => {
            return Err(CliError::Usage(format!(
                "refusing to wipe the Redis prefix `{prefix}`: the bench deletes its keys before \
                 every run; use a prefix containing `bench`"
            )));
        }
        None => {
            let sep = if url.contains('?') { '&' } else { '?' };
            (format!("{url}{sep}prefix={PREFIX}"), PREFIX.to_string())
        }
    };
    spool::store::redis::RedisStore::delete_prefix(&url, &prefix).await?;
    Ok(url)
}

#[cfg(not(feature = "redis"))]
async fn redis_scratch(_url: &str) -> Result<String, CliError> {
    Err(spool::store::StoreError::NotCompiled("redis").into())
}
