//! The store contract in six parts.
//!
//! - [`QueueStore`]: the worker's hot path and lease bookkeeping — push, reserve, settle,
//!   reap, wake-ups, migrations.
//! - [`AdminStore`]: what operators read and change — counts, job listings, the failed store,
//!   the restart signal.
//! - [`WorkflowStore`]: batches, shared limits and slots, progress and kept results.
//! - [`ControlStore`]: what every worker is told — paused queues, quiet, terminate.
//! - [`MetricsStore`]: measured counts, wait and run times per minute, hour and all time.
//! - [`KeyValueStore`]: small shared values changed by compare-and-set, optionally expiring.
//!
//! [`Store`] is their sum and is what every backend provides; it is implemented automatically
//! for any type that implements the six parts, so `Arc<dyn Store>` works everywhere while
//! code that needs one part can ask for just that part (`&dyn AdminStore`, ...).

mod admin;
mod control;
pub(crate) mod kv;
mod metrics;
mod queue;
mod workflow;

pub use admin::AdminStore;
pub use control::{Control, ControlEpoch, ControlKind, ControlStore, Record, RecordKind};
pub use kv::{KeyValueStore, KvEntry, KvExpect, MAX_KV_KEY};
pub use metrics::MetricsStore;
pub use queue::QueueStore;
pub use workflow::WorkflowStore;

/// The whole contract every store implements: the sum of its six parts.
///
/// Implement [`QueueStore`], [`AdminStore`], [`WorkflowStore`], [`ControlStore`] and
/// [`MetricsStore`] and [`KeyValueStore`]; `Store` follows.
///
/// ```no_run
/// # async fn demo() -> Result<(), spool::StoreError> {
/// use spool::store::{AdminStore, Store};
/// let store: std::sync::Arc<dyn Store> = spool::connect("sqlite://jobs.db").await?;
/// let admin: &dyn AdminStore = &*store; // ask for the part you need
/// println!("{} queues", admin.stats().await?.queues.len());
/// # Ok(()) }
/// ```
pub trait Store:
    QueueStore + AdminStore + WorkflowStore + ControlStore + MetricsStore + KeyValueStore
{
}

impl<
    T: QueueStore + AdminStore + WorkflowStore + ControlStore + MetricsStore + KeyValueStore + ?Sized,
> Store for T
{
}
