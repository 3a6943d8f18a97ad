//! The operator's part: counts, listings, deleting and running jobs, the failed store, restart.

use std::time::Duration;

use async_trait::async_trait;

use crate::store::*;

/// The operator's part of the contract: inspecting and changing what is queued and failed.
#[async_trait]
pub trait AdminStore: Send + Sync + 'static {
    /// Per-queue counts, totals and live workers.
    async fn stats(&self) -> StoreResult<Stats>;

    /// Queued jobs matching `filter`, oldest first.
    async fn jobs(&self, filter: &JobFilter) -> StoreResult<Vec<JobInfo>>;

    /// One queued job.
    async fn job(&self, id: &str) -> StoreResult<Option<JobInfo>>;

    /// Deletes a queued job that no worker holds; false if there is none.
    async fn delete_job(&self, id: &str) -> StoreResult<bool>;

    /// Makes a delayed job available now; false if there is no delayed job with that id.
    async fn run_job_now(&self, id: &str) -> StoreResult<bool>;

    /// Deletes the pending and delayed jobs of a queue (reserved ones finish); returns the count.
    async fn clear(&self, queue: &str) -> StoreResult<u64>;

    /// Failed records, newest first, and the total matching count.
    async fn failed_jobs(&self, filter: &FailedFilter) -> StoreResult<(Vec<FailedJob>, u64)>;

    /// One failed record.
    async fn failed_job(&self, id: &str) -> StoreResult<Option<FailedJob>>;

    /// Puts failed jobs back on their queues with fresh counters and the same id; returns
    /// the ids retried.
    async fn retry_failed(&self, selector: &RetrySelector) -> StoreResult<Vec<String>>;

    /// Deletes one failed record.
    async fn forget_failed(&self, id: &str) -> StoreResult<bool>;

    /// Deletes every failed record; returns the count.
    async fn flush_failed(&self) -> StoreResult<u64>;

    /// Deletes failed records older than `age`; returns the count.
    async fn prune_failed(&self, age: Duration) -> StoreResult<u64>;

    /// Sets a new restart epoch; workers that started under an older one stop after their
    /// current jobs. Returns the new epoch.
    async fn signal_restart(&self) -> StoreResult<i64>;
}
