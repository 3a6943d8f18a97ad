//! The store contract in three parts.
//!
//! - [`QueueStore`]: the worker's hot path and lease bookkeeping — push, reserve, settle,
//!   reap, wake-ups, migrations.
//! - [`AdminStore`]: what operators read and change — counts, job listings, the failed store,
//!   the restart signal.
//! - [`WorkflowStore`]: batches, shared limits and slots, progress and kept results.
//! - [`ControlStore`]: what every worker is told — paused queues, quiet, terminate.
//!
//! [`Store`] is their sum and is what every backend provides; it is implemented automatically
//! for any type that implements the three parts, so `Arc<dyn Store>` works everywhere while
//! code that needs one part can ask for just that part (`&dyn AdminStore`, ...).

mod admin;
mod control;
mod queue;
mod workflow;

pub use admin::AdminStore;
pub use control::{Control, ControlEpoch, ControlKind, ControlStore, Record, RecordKind};
pub use queue::QueueStore;
pub use workflow::WorkflowStore;

/// The whole contract every store implements: the sum of its four parts.
///
/// Implement [`QueueStore`], [`AdminStore`], [`WorkflowStore`] and [`ControlStore`]; `Store`
/// follows.
///
/// ```no_run
/// # async fn demo() -> Result<(), spool::StoreError> {
/// use spool::store::{AdminStore, Store};
/// let store: std::sync::Arc<dyn Store> = spool::connect("sqlite://jobs.db").await?;
/// let admin: &dyn AdminStore = &*store; // ask for the part you need
/// println!("{} queues", admin.stats().await?.queues.len());
/// # Ok(()) }
/// ```
pub trait Store: QueueStore + AdminStore + WorkflowStore + ControlStore {}

impl<T: QueueStore + AdminStore + WorkflowStore + ControlStore + ?Sized> Store for T {}
