//! The store contract (in five parts, see [`Store`]) and the backends that implement it. The
//! conformance suite that checks them is the `spool-conformance` crate.
//!
//! Everything above this module is backend-agnostic. Operations are batch-first (push many,
//! reserve up to N queue by queue in priority order, settle many), every job mutation by a
//! worker is fenced on the token handed out with its reservation, and times are computed with
//! the store's own clock (D-7).

use std::sync::Arc;

mod contract;
mod error;
mod new_job;
pub(crate) mod rules;
mod search;
mod stats;
mod types;
pub(crate) mod unreadable;
mod wakeup;

#[cfg(feature = "mysql")]
pub mod mysql;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(any(feature = "postgres", feature = "mysql", feature = "redis"))]
mod server_url;
#[cfg(any(feature = "postgres", feature = "mysql"))]
mod sql;
#[cfg(feature = "sqlite")]
pub mod sqlite;

pub use contract::{
    AdminStore, Control, ControlEpoch, ControlKind, ControlStore, KeyValueStore, KvEntry, KvExpect,
    MAX_KV_KEY, MetricsStore, QueueStore, Record, RecordKind, Store, WorkflowStore,
};
pub use error::{ACCEPTED_URLS, StoreError};
pub use new_job::NewJob;
#[cfg_attr(
    not(any(
        feature = "sqlite",
        feature = "postgres",
        feature = "mysql",
        feature = "redis"
    )),
    allow(unused_imports)
)]
pub(crate) use new_job::{check_batch, check_jobs, distinct as distinct_tags, tags_of_column};
pub use rules::hands_on_batch_membership;
#[cfg_attr(
    not(any(
        feature = "sqlite",
        feature = "postgres",
        feature = "mysql",
        feature = "redis"
    )),
    allow(unused_imports)
)]
pub(crate) use search::{CompletedKey, Part, bad_cursor, merge, uncommented};
pub use search::{JobSearch, MAX_PAGE, Page, SEARCH_WINDOW};
pub use stats::*;
pub use types::*;
pub use wakeup::{WakeupSignal, Wakeups};

/// Result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// The store URL used when none is given: an embedded SQLite file in the working directory.
pub const DEFAULT_URL: &str = "sqlite://spool.db";

/// The backend a store URL names, from its scheme: `sqlite`, `postgres`, `mysql` or `redis`.
/// Refuses an unknown scheme (naming the accepted forms) rather than guessing, and SQLite's
/// in-memory form, which separate connections cannot share.
///
/// ```
/// assert_eq!(spool::store::backend_for_url("sqlite:spool.db").unwrap(), "sqlite");
/// assert_eq!(spool::store::backend_for_url("mariadb://root@db/app").unwrap(), "mysql");
/// assert!(spool::store::backend_for_url("ftp://x").is_err());
/// ```
pub fn backend_for_url(url: &str) -> StoreResult<&'static str> {
    let Some((scheme, rest)) = url.split_once(':') else {
        return Err(StoreError::bad_url(url, "no scheme"));
    };
    let backend = match scheme.to_ascii_lowercase().as_str() {
        "sqlite" => return Ok("sqlite"),
        "postgres" | "postgresql" => "postgres",
        "mysql" | "mariadb" => "mysql",
        "redis" | "rediss" => "redis",
        other => {
            return Err(StoreError::bad_url(
                url,
                format!("unknown scheme `{other}`"),
            ));
        }
    };
    if !rest.starts_with("//") {
        return Err(StoreError::bad_url(url, format!("expected `{scheme}://`")));
    }
    Ok(backend)
}

/// Opens the store a URL names, creating or upgrading Spool's tables (or keys) there:
/// `sqlite://PATH` (or `sqlite:PATH`), `postgres://...`, `mysql://...` (`mariadb://` is an
/// alias) or `redis://...`. What dispatches and works uses this; a command that only reads
/// or administers a store uses [`open_existing`].
///
/// ```no_run
/// # async fn demo() -> Result<(), spool::StoreError> {
/// let store = spool::connect("sqlite://jobs.db").await?;
/// println!("{} store ready", store.backend());
/// # Ok(()) }
/// ```
pub async fn connect(url: &str) -> StoreResult<Arc<dyn Store>> {
    let store = open_url(url, true).await?;
    store.migrate().await?;
    Ok(store)
}

/// Opens the store a URL names only if Spool's tables (or keys) are there at this build's
/// version, creating and changing nothing: a mistyped URL is
/// [`StoreError::NoStore`] rather than a new, empty store, a SQLite file that does not
/// exist is not created, and a read-only database role is enough.
///
/// ```no_run
/// # async fn demo() -> Result<(), spool::StoreError> {
/// let store = spool::store::open_existing("postgres://reader@db/app").await?;
/// println!("{:?}", store.stats().await?);
/// # Ok(()) }
/// ```
pub async fn open_existing(url: &str) -> StoreResult<Arc<dyn Store>> {
    let store = open_url(url, false).await?;
    store.check_schema().await.map_err(|e| match e {
        StoreError::NoStore(_) => StoreError::no_store(url),
        e => e,
    })?;
    Ok(store)
}

/// Opens a handle on the store a URL names; `create` lets SQLite create its file.
async fn open_url(url: &str, create: bool) -> StoreResult<Arc<dyn Store>> {
    // Opens the store with `$open` when the build has `$feature`, else says which feature.
    macro_rules! open_if_compiled {
        ($feature:literal, $open:expr) => {{
            #[cfg(feature = $feature)]
            {
                Arc::new($open.await?)
            }
            #[cfg(not(feature = $feature))]
            return Err(StoreError::NotCompiled($feature));
        }};
    }
    let _ = create;
    Ok(match backend_for_url(url)? {
        "sqlite" if create => open_if_compiled!("sqlite", sqlite::SqliteStore::open(url)),
        "sqlite" => open_if_compiled!("sqlite", sqlite::SqliteStore::open_existing(url)),
        "postgres" => open_if_compiled!("postgres", postgres::PostgresStore::open(url)),
        "mysql" => open_if_compiled!("mysql", mysql::MysqlStore::open(url)),
        _ => open_if_compiled!("redis", redis::RedisStore::open(url)),
    })
}

/// The store URL from `SPOOL_URL`, else [`DEFAULT_URL`].
pub fn url_from_env() -> String {
    std::env::var("SPOOL_URL").unwrap_or_else(|_| DEFAULT_URL.to_string())
}
