//! Workflows: batches, shared limits and concurrency slots, progress and kept results.

use std::time::Duration;

use async_trait::async_trait;

use crate::store::*;

/// The workflow part of the contract: batches, limits, slots, progress and results, each
/// atomic with the job mutation it belongs to.
#[async_trait]
pub trait WorkflowStore: Send + Sync + 'static {
    // --- Workflows: batches, limiters, progress and results ------------------------------

    /// Creates a batch and pushes its jobs (whose `batch_id` is the batch's id) in one atomic
    /// step: either the batch and every job exist, or nothing does.
    async fn create_batch(
        &self,
        batch: &NewBatch,
        jobs: &[NewJob],
    ) -> StoreResult<Vec<PushOutcome>>;

    /// Adds jobs to a batch: total and pending grow, and a finished batch is open again.
    /// Fails with [`StoreError::Invalid`] if there is no such batch.
    async fn add_to_batch(&self, batch_id: &str, jobs: &[NewJob]) -> StoreResult<Vec<PushOutcome>>;

    /// One batch.
    async fn batch(&self, id: &str) -> StoreResult<Option<BatchInfo>>;

    /// The newest batches first, at most `limit`.
    async fn batches(&self, limit: u32) -> StoreResult<Vec<BatchInfo>>;

    /// Marks a batch cancelled (and finished); its queued jobs are skipped when reserved.
    /// False if there is no such batch or it was already cancelled.
    async fn cancel_batch(&self, id: &str) -> StoreResult<bool>;

    /// Deletes old batch records; returns the count.
    async fn prune_batches(&self, prune: BatchPrune) -> StoreResult<u64>;

    /// A sliding-window counter shared by every worker: counts the hits of `key` in the last
    /// `window` and records one as `mode` says, atomically.
    async fn limit(&self, key: &str, window: Duration, mode: LimitMode) -> StoreResult<LimitState>;

    /// Forgets every hit of `key`.
    async fn clear_limit(&self, key: &str) -> StoreResult<()>;

    /// Deletes the limiter hits whose window has passed, whatever their key, so the hits of a
    /// key that is never used again do not stay forever; returns how many were deleted.
    /// Workers call it with their other pruning. A store whose hits expire by themselves
    /// (Redis, through key TTLs) deletes nothing and returns 0.
    async fn prune_limits(&self) -> StoreResult<u64>;

    /// Takes a concurrency slot for a reserved job if fewer than `limit` are held. The slot
    /// is freed when the job is settled, when its worker's lease expires, or after
    /// `expire_after`. A job may hold several keys; asking again for a held key is a success.
    async fn acquire_slot(&self, worker_id: &str, request: &SlotRequest) -> StoreResult<bool>;

    /// Records a reserved job's progress (fenced like a settlement); false if the worker no
    /// longer holds it.
    async fn set_progress(&self, held: Held<'_>, progress: &Progress) -> StoreResult<bool>;

    /// A completed job's record, with its result if one is kept: while its history record
    /// (see [`AdminStore::completed_jobs`](crate::store::AdminStore::completed_jobs)) or its
    /// result lasts, whichever is longer.
    async fn job_result(&self, id: &str) -> StoreResult<Option<CompletedJob>>;

    /// Deletes kept results older than `age` (not the history records, see
    /// [`AdminStore::prune_completed`](crate::store::AdminStore::prune_completed)); returns the
    /// count.
    async fn prune_results(&self, age: Duration) -> StoreResult<u64>;

    /// The id of the job holding the unique lock `key` for `queue` (locks are per queue on
    /// Redis, global on the SQL stores), if it is held: what a dispatch refused by the lock
    /// reports instead of its own id.
    async fn unique_holder(&self, queue: &str, key: &str) -> StoreResult<Option<String>>;
}
