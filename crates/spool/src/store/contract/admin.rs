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

    /// Queued jobs matching `search`, a page at a time (pass a page's `next` as the next
    /// search's `after`). With a tag, the tag's own index is walked, in dispatch order (job
    /// id order on Redis, which has no tag index: there it is a filter like the others).
    /// Otherwise jobs come in listing order, oldest available first (Redis: queue by queue,
    /// each in its list's order), and a job name or batch is checked on each candidate: at
    /// most [`SEARCH_WINDOW`] per call, so a page may be short, or empty, with a `next` to
    /// search further from.
    async fn search_jobs(&self, search: &JobSearch) -> StoreResult<Page<JobInfo>>;

    /// Completed records matching `search` (queue, job name, tag, batch; its state is
    /// ignored), newest first, a page at a time, without their results (`has_result` says
    /// whether [`job_result`](crate::store::WorkflowStore::job_result) has one). A tag is
    /// looked up in its index on the SQL stores; a job name, queue or batch (and on Redis a
    /// tag) is checked on each record, at most [`SEARCH_WINDOW`] per call (per queue on
    /// Redis), so a page may be short, or empty, with a `next` to search older records from.
    async fn completed_jobs(&self, search: &JobSearch) -> StoreResult<Page<CompletedJob>>;

    /// Deletes completed records older than `age`, whatever their results (which stay for
    /// their own retention, see [`prune_results`](crate::store::WorkflowStore::prune_results));
    /// returns the count. Deletes in slices, so a large backlog never holds a long lock.
    async fn prune_completed(&self, age: Duration) -> StoreResult<u64>;

    /// Deletes a queued job that no worker holds; false if there is none.
    async fn delete_job(&self, id: &str) -> StoreResult<bool>;

    /// Makes a delayed job available now; false if there is no delayed job with that id.
    async fn run_job_now(&self, id: &str) -> StoreResult<bool>;

    /// Deletes the pending and delayed jobs of a queue (reserved ones finish); returns the count.
    async fn clear(&self, queue: &str) -> StoreResult<u64>;

    /// Failed records, newest first, and the total matching count.
    async fn failed_jobs(&self, filter: &FailedFilter) -> StoreResult<(Vec<FailedJob>, u64)>;

    /// The records [`AdminStore::failed_jobs`] lists, without counting every matching one:
    /// for a page that knows the total already (the dashboard keeps counts). By default that
    /// call's records; a store whose count reads every record (PostgreSQL) skips it.
    async fn failed_page(&self, filter: &FailedFilter) -> StoreResult<Vec<FailedJob>> {
        Ok(self.failed_jobs(filter).await?.0)
    }

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
