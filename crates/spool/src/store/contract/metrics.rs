//! The metrics part: per-minute, per-hour and all-time records of what happened to each job
//! name on each queue, written by workers about once a minute and by every push (its
//! enqueued count, in the same statement or transaction).

use async_trait::async_trait;

use crate::{
    metrics::{MetricsQuery, MetricsRecord},
    store::StoreResult,
};

/// The metrics part of the contract.
///
/// ```no_run
/// # async fn demo() -> Result<(), spool::StoreError> {
/// use spool::metrics::{MetricsQuery, Resolution, Summary};
/// use spool::store::{MetricsStore, Store};
/// let store: std::sync::Arc<dyn Store> = spool::connect("sqlite://jobs.db").await?;
/// let hour = 3_600_000;
/// let query = MetricsQuery {
///     resolution: Resolution::Minute,
///     since_ms: spool::now_ms() - hour,
///     queue: None,
/// };
/// let summary = Summary::of(&store.metrics(&query).await?, hour);
/// for queue in summary.queues {
///     println!("{}: {} completed, p95 run {:?} ms", queue.name, queue.completed, queue.run_ms.p95);
/// }
/// # Ok(()) }
/// ```
#[async_trait]
pub trait MetricsStore: Send + Sync + 'static {
    /// Adds `records` (each dated by any instant of its minute) to the stored minute, hour
    /// and all-time records of its queue and job name, atomically.
    async fn record_metrics(&self, records: &[MetricsRecord]) -> StoreResult<()>;

    /// The stored records `query` asks for, in (period, queue, job) order.
    async fn metrics(&self, query: &MetricsQuery) -> StoreResult<Vec<MetricsRecord>>;

    /// Deletes minute records past 48 hours and hour records past 30 days, as of `now_ms`;
    /// totals are never pruned. Returns how many stored cells went (0 where the store
    /// expires them by itself).
    async fn prune_metrics(&self, now_ms: i64) -> StoreResult<u64>;
}
