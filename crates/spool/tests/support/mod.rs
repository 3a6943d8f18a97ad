//! Fresh, isolated stores of every kind for tests that run against each of them: a temp
//! SQLite file, a PostgreSQL schema, a MySQL database, a Redis key prefix. A server that can't
//! be reached is skipped with `SKIPPED: …` on a laptop and fails the run under `CI=true`.
#![allow(dead_code, missing_docs)]

use std::sync::Arc;

use spool::Store;

/// A fresh store's URL, and what to remove when the test is done.
pub struct Fresh {
    pub url: String,
    pub backend: &'static str,
    cleanup: Cleanup,
}

enum Cleanup {
    Dir(#[allow(dead_code)] tempfile::TempDir),
    #[cfg(feature = "postgres")]
    Schema {
        base: String,
        name: String,
    },
    #[cfg(feature = "mysql")]
    Database {
        base: String,
        name: String,
    },
    #[cfg(feature = "redis")]
    Prefix {
        base: String,
        name: String,
    },
}

impl Fresh {
    /// Opens (and migrates) the store.
    pub async fn connect(&self) -> Arc<dyn Store> {
        spool::connect(&self.url)
            .await
            .expect("connect to the fresh store")
    }

    /// Removes what the test left (best effort: the test already passed).
    pub async fn cleanup(self) {
        let result = match self.cleanup {
            Cleanup::Dir(_) => Ok(()),
            #[cfg(feature = "postgres")]
            Cleanup::Schema { base, name } => {
                spool::store::postgres::PostgresStore::drop_schema(&base, &name).await
            }
            #[cfg(feature = "mysql")]
            Cleanup::Database { base, name } => {
                spool::store::mysql::MysqlStore::drop_database(&base, &name).await
            }
            #[cfg(feature = "redis")]
            Cleanup::Prefix { base, name } => {
                spool::store::redis::RedisStore::delete_prefix(&base, &name)
                    .await
                    .map(|_| ())
            }
        };
        if let Err(e) = result {
            eprintln!("cleanup of {} failed: {e}", self.backend);
        }
    }
}

pub fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// `spool_test_<unix secs>_<random>`: the conformance suites sweep such leftovers.
pub fn unique_name() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("spool_test_{secs}_{:08x}", fastrand::u32(..))
}

/// The answer to a server that can't be reached: skipped (`None`) on a laptop, a failure
/// under `CI=true`.
pub fn unreachable<T>(backend: &str, url: &str, error: &spool::StoreError) -> Option<T> {
    if ci() {
        panic!("{backend} unreachable at {url}: {error} (CI=true: the tests need the server)");
    }
    eprintln!("SKIPPED: {backend} unreachable at {url}: {error}");
    None
}

/// `Some(fresh)` if the server answers; `None` (skipped) when unreachable outside CI.
async fn reachable(backend: &'static str, url: String, cleanup: Cleanup) -> Option<Fresh> {
    match spool::connect(&url).await {
        Ok(_) => Some(Fresh {
            url,
            backend,
            cleanup,
        }),
        Err(e) if e.is_unavailable() => unreachable(backend, &url, &e),
        Err(e) => panic!("{backend} at {url}: {e}"),
    }
}

pub async fn sqlite() -> Option<Fresh> {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("spool.db").display());
    Some(Fresh {
        url,
        backend: "sqlite",
        cleanup: Cleanup::Dir(dir),
    })
}

fn with_param(base: &str, param: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{param}")
}

#[cfg(feature = "postgres")]
pub async fn postgres() -> Option<Fresh> {
    let base = std::env::var("SPOOL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let name = unique_name();
    let url = with_param(&base, &format!("spool_schema={name}"));
    reachable("postgres", url, Cleanup::Schema { base, name }).await
}

#[cfg(feature = "mysql")]
pub async fn mysql() -> Option<Fresh> {
    use spool::store::mysql::MysqlStore;
    let base = std::env::var("SPOOL_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into());
    let name = unique_name();
    match MysqlStore::create_database(&base, &name).await {
        Ok(()) => {}
        Err(e) if e.is_unavailable() => return unreachable("mysql", &base, &e),
        Err(e) => panic!("mysql at {base}: {e}"),
    }
    // The same server, the new database.
    let server = base
        .rsplit_once('/')
        .map_or(base.as_str(), |(server, _)| server);
    let url = format!("{server}/{name}");
    reachable("mysql", url, Cleanup::Database { base, name }).await
}

#[cfg(feature = "redis")]
pub async fn redis() -> Option<Fresh> {
    let base =
        std::env::var("SPOOL_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into());
    let name = unique_name();
    let url = with_param(&base, &format!("prefix={name}"));
    reachable("redis", url, Cleanup::Prefix { base, name }).await
}

/// Instantiates `$test(fresh)` for every store this build has, as `<store>::$test`.
#[macro_export]
macro_rules! on_every_store {
    ($($test:ident),* $(,)?) => {
        $crate::on_every_store!(@store sqlite, all(); $($test),*);
        $crate::on_every_store!(@store postgres, any(feature = "postgres"); $($test),*);
        $crate::on_every_store!(@store mysql, any(feature = "mysql"); $($test),*);
        $crate::on_every_store!(@store redis, any(feature = "redis"); $($test),*);
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
