//! Fresh, isolated stores of every kind for tests that run against each of them: a temp
//! SQLite file, a PostgreSQL schema, a MySQL database, a Redis key prefix. A server that can't
//! be reached is skipped with `SKIPPED: …` on a laptop and fails the run under `CI=true`.
//!
//! A [`Fresh`] location is also the conformance suite's [`Fixture`]: more handles on it, and
//! raw writes into it through each store's own driver (rusqlite, sqlx, redis), as another
//! program would write them.
#![allow(dead_code, unused_imports, missing_docs)]

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use spool::Store;
use spool_conformance::{Fixture, Raw};

#[cfg(feature = "postgres")]
pub(crate) mod bouncer;
#[cfg(feature = "redis")]
pub(crate) mod cluster;
#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod pgbouncer;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "postgres")]
pub(crate) use bouncer::{PoolMode, bouncer_url};
#[cfg(feature = "mysql")]
pub(crate) use mysql::{mysql, mysql_url};
#[cfg(feature = "postgres")]
pub(crate) use pgbouncer::pgbouncer;
#[cfg(feature = "postgres")]
pub(crate) use postgres::{postgres, postgres_url};
#[cfg(feature = "redis")]
pub(crate) use redis::{
    POLICY, cluster as redis_cluster_nodes, connection as redis_connection, raw_meta_is_seen,
    redis, redis_cluster, redis_url,
};
#[cfg(feature = "sqlite")]
pub(crate) use sqlite::{SQLITE_FILE, sqlite, sqlite_store};

/// The schema version this build's SQL stores migrate to.
const SCHEMA_VERSION: i64 = 7;
/// The key layout version this build's Redis store migrates to.
const REDIS_LAYOUT_VERSION: i64 = 3;

/// A fresh location's URL, and where it is.
pub(crate) struct Fresh {
    pub url: String,
    pub backend: &'static str,
    location: Location,
}

enum Location {
    #[cfg(feature = "sqlite")]
    Sqlite {
        path: std::path::PathBuf,
        _dir: tempfile::TempDir,
    },
    #[cfg(feature = "postgres")]
    Schema { base: String, name: String },
    /// A PostgreSQL schema reached through a pooler: stores open `pooled`, raw writes and
    /// clean-up go to `direct`.
    #[cfg(feature = "postgres")]
    Pooled {
        pooled: String,
        direct: String,
        name: String,
    },
    #[cfg(feature = "mysql")]
    Database { base: String, name: String },
    #[cfg(feature = "redis")]
    Prefix { base: String, name: String },
}

impl Fresh {
    /// Opens (and migrates) the store.
    pub(crate) async fn connect(&self) -> Arc<dyn Store> {
        spool::connect(&self.url)
            .await
            .expect("connect to the fresh store")
    }

    /// Opens a handle on the store without migrating it.
    pub(crate) async fn open(&self) -> Arc<dyn Store> {
        match &self.location {
            #[cfg(feature = "sqlite")]
            Location::Sqlite { .. } => sqlite::open(&self.url).await,
            #[cfg(feature = "postgres")]
            Location::Schema { base, name } => postgres::open(base, name).await,
            #[cfg(feature = "postgres")]
            Location::Pooled { pooled, name, .. } => postgres::open(pooled, name).await,
            #[cfg(feature = "mysql")]
            Location::Database { .. } => mysql::open(&self.url).await,
            #[cfg(feature = "redis")]
            Location::Prefix { .. } => redis::open(&self.url).await,
        }
    }

    /// Removes what the test left (best effort: the test already passed).
    pub(crate) async fn cleanup(self) {
        self.remove().await;
    }

    async fn remove(&self) {
        let result: Result<(), spool::StoreError> = match &self.location {
            #[cfg(feature = "sqlite")]
            Location::Sqlite { .. } => Ok(()),
            #[cfg(feature = "postgres")]
            Location::Schema { base, name }
            | Location::Pooled {
                direct: base, name, ..
            } => spool::store::postgres::PostgresStore::drop_schema(base, name).await,
            #[cfg(feature = "mysql")]
            Location::Database { base, name } => {
                spool::store::mysql::MysqlStore::drop_database(base, name).await
            }
            #[cfg(feature = "redis")]
            Location::Prefix { base, name } => {
                spool::store::redis::RedisStore::delete_prefix(base, name)
                    .await
                    .map(|_| ())
            }
        };
        if let Err(e) = result {
            eprintln!("cleanup of {} failed: {e}", self.backend);
        }
    }
}

#[async_trait]
impl Fixture for Fresh {
    fn backend(&self) -> &'static str {
        self.backend
    }

    async fn open(&self) -> Arc<dyn Store> {
        Fresh::open(self).await
    }

    async fn raw(&self, write: Raw) -> Result<(), String> {
        match &self.location {
            #[cfg(feature = "sqlite")]
            Location::Sqlite { path, .. } => sqlite::raw(path, write).await,
            #[cfg(feature = "postgres")]
            Location::Schema { base, name }
            | Location::Pooled {
                direct: base, name, ..
            } => postgres::raw(base, name, write).await,
            #[cfg(feature = "mysql")]
            Location::Database { .. } => mysql::raw(&self.url, write).await,
            #[cfg(feature = "redis")]
            Location::Prefix { base, name } => redis::raw(base, name, write).await,
        }
    }

    fn key_prefix(&self) -> Option<String> {
        match &self.location {
            #[cfg(feature = "redis")]
            Location::Prefix { name, .. } => Some(name.clone()),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    async fn schema_version(&self) -> i64 {
        match &self.location {
            #[cfg(feature = "sqlite")]
            Location::Sqlite { path, .. } => sqlite::schema_version(path).await,
            #[cfg(feature = "postgres")]
            Location::Schema { base, name }
            | Location::Pooled {
                direct: base, name, ..
            } => postgres::schema_version(base, name).await,
            #[cfg(feature = "mysql")]
            Location::Database { .. } => mysql::schema_version(&self.url).await,
            #[cfg(feature = "redis")]
            Location::Prefix { base, name } => redis::schema_version(base, name).await,
        }
    }

    fn current_schema_version(&self) -> i64 {
        match self.backend {
            "redis" => REDIS_LAYOUT_VERSION,
            _ => SCHEMA_VERSION,
        }
    }

    async fn write_version_1(&self, job_id: &str) -> Result<(), String> {
        match &self.location {
            #[cfg(feature = "sqlite")]
            Location::Sqlite { path, .. } => sqlite::write_version_1(path, job_id).await,
            #[cfg(feature = "postgres")]
            Location::Schema { base, name }
            | Location::Pooled {
                direct: base, name, ..
            } => postgres::write_version_1(base, name, job_id).await,
            #[cfg(feature = "mysql")]
            Location::Database { .. } => mysql::write_version_1(&self.url, job_id).await,
            #[cfg(feature = "redis")]
            Location::Prefix { base, name } => redis::write_version_1(base, name, job_id).await,
        }
    }

    async fn cleanup(&self) {
        self.remove().await;
    }
}

pub(crate) fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Test locations are named `spool_test_<unix seconds>_<random>`.
const PREFIX: &str = "spool_test_";
/// Locations older than this are leftovers of earlier runs (a failed test leaves its own for
/// inspection). Younger ones may belong to a test running right now in another process, so
/// they are left alone.
const LEFTOVER_AGE: Duration = Duration::from_secs(15 * 60);

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `spool_test_<unix secs>_<random>`: leftovers of such names are swept by later runs.
pub(crate) fn unique_name() -> String {
    format!("{PREFIX}{}_{:08x}", unix_secs(), fastrand::u32(..))
}

/// Whether a test location's name says it is a leftover of an earlier run.
fn is_leftover(name: &str) -> bool {
    let cutoff = unix_secs().saturating_sub(LEFTOVER_AGE.as_secs());
    name.strip_prefix(PREFIX)
        .and_then(|rest| rest.split('_').next())
        .and_then(|secs| secs.parse::<u64>().ok())
        .is_some_and(|secs| secs < cutoff)
}

/// The answer to a server that can't be reached: skipped (`None`) on a laptop, a failure
/// under `CI=true`.
pub(crate) fn unreachable<T>(backend: &str, url: &str, error: &spool::StoreError) -> Option<T> {
    if ci() {
        panic!("{backend} unreachable at {url}: {error} (CI=true: the tests need the server)");
    }
    eprintln!("SKIPPED: {backend} unreachable at {url}: {error}");
    None
}

/// `url` with one more query parameter.
fn with_param(base: &str, param: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{param}")
}

/// Instantiates `$test(fresh)` for every store this build has, as `<store>::$test`.
#[macro_export]
macro_rules! on_every_store {
    ($($test:ident),* $(,)?) => {
        $crate::on_every_store!(@store sqlite, any(feature = "sqlite"); $($test),*);
        $crate::on_every_store!(@store postgres, any(feature = "postgres"); $($test),*);
        $crate::on_every_store!(@store mysql, any(feature = "mysql"); $($test),*);
        $crate::on_every_store!(@store redis, any(feature = "redis"); $($test),*);
        $crate::on_every_store!(@store redis_cluster, any(feature = "redis"); $($test),*);
    };
    (@store $store:ident, $cfg:meta; $($test:ident),*) => {
        #[cfg($cfg)]
        mod $store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    if let Some(fresh) = $crate::support::$store().await {
                        super::$test(&fresh).await;
                        fresh.cleanup().await;
                    }
                }
            )*
        }
    };
}

/// Inserts a job row raw (`statement` binds the id, then the envelope) and checks the store
/// sees it: the fixture's raw path reaches the store's own tables.
pub(crate) async fn raw_job_row_is_seen(fresh: &Fresh, statement: &str) {
    let store = Fixture::store(fresh).await;
    fresh
        .raw(Raw::Sql {
            statement: statement.into(),
            binds: vec!["raw".into(), "{}".into()],
        })
        .await
        .expect("raw insert");
    let job = store
        .job("raw")
        .await
        .unwrap()
        .expect("the raw row is a job");
    assert_eq!(
        (job.queue.as_str(), job.state),
        ("default", spool::store::JobState::Pending)
    );
}
