//! The store contract (in three parts, see [`Store`]) and the backends that implement it. The
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
mod types;
mod wakeup;

#[cfg(feature = "mysql")]
pub mod mysql;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(any(feature = "postgres", feature = "mysql"))]
mod sql;
#[cfg(feature = "sqlite")]
pub mod sqlite;

pub use contract::{AdminStore, QueueStore, Store, WorkflowStore};
pub use error::StoreError;
pub use new_job::NewJob;
pub(crate) use new_job::{check_batch, check_jobs};
pub use rules::hands_on_batch_membership;
pub use types::*;
pub use wakeup::{WakeupSignal, Wakeups};

/// Result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// The store URL used when none is given: an embedded SQLite file in the working directory.
pub const DEFAULT_URL: &str = "sqlite://spool.db";

/// Opens (and migrates) the store a URL names: `sqlite://PATH`, `postgres://...` or
/// `mysql://...` (`mariadb://` is an alias) or `redis://...`.
///
/// ```no_run
/// # async fn demo() -> Result<(), spool::StoreError> {
/// let store = spool::connect("sqlite://jobs.db").await?;
/// println!("{} store ready", store.backend());
/// # Ok(()) }
/// ```
pub async fn connect(url: &str) -> StoreResult<Arc<dyn Store>> {
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
    let store: Arc<dyn Store> = match url.split_once("://").map(|(scheme, _)| scheme) {
        Some("sqlite") => open_if_compiled!("sqlite", sqlite::SqliteStore::open(url)),
        Some("postgres" | "postgresql") => {
            open_if_compiled!("postgres", postgres::PostgresStore::open(url))
        }
        Some("mysql" | "mariadb") => open_if_compiled!("mysql", mysql::MysqlStore::open(url)),
        Some("redis" | "rediss") => open_if_compiled!("redis", redis::RedisStore::open(url)),
        _ => return Err(StoreError::BadUrl(url.to_string())),
    };
    store.migrate().await?;
    Ok(store)
}

/// The store URL from `SPOOL_URL`, else [`DEFAULT_URL`].
pub fn url_from_env() -> String {
    std::env::var("SPOOL_URL").unwrap_or_else(|_| DEFAULT_URL.to_string())
}
