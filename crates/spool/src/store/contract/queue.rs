//! The queue core: what a worker needs to take jobs and hand them back.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;

use super::Store;
use crate::store::*;

/// The queue core of the contract: taking, settling and recovering jobs.
///
/// Implementations must keep each method atomic: a crash half-way through a call leaves the
/// store as before the call or as after it.
#[async_trait]
pub trait QueueStore: Send + Sync + 'static {
    /// A short backend name: `sqlite`, `postgres`, `mysql`, `redis`.
    fn backend(&self) -> &'static str;

    /// Creates or upgrades Spool's tables. Safe to call concurrently and repeatedly.
    async fn migrate(&self) -> StoreResult<()>;

    /// Checks that Spool's tables (or keys) are there at this build's version, without
    /// creating or changing anything (a read-only database role can call it):
    /// [`StoreError::NoStore`](crate::StoreError::NoStore) when nothing of Spool's is at the
    /// location, [`SchemaTooOld`](crate::StoreError::SchemaTooOld) when it needs
    /// [`migrate`](QueueStore::migrate), [`SchemaTooNew`](crate::StoreError::SchemaTooNew)
    /// when a newer build wrote it.
    async fn check_schema(&self) -> StoreResult<()>;

    /// Opens a second handle to the same store with its own connections, for use on another
    /// runtime (the worker's heartbeat thread, which busy handlers must not starve).
    async fn reopen(&self) -> StoreResult<Arc<dyn Store>>;

    /// Enqueues jobs; one outcome per job, in input order. A job whose id already exists is
    /// left untouched and reported as [`PushOutcome::AlreadyQueued`].
    async fn push(&self, jobs: &[NewJob]) -> StoreResult<Vec<PushOutcome>>;

    /// Registers (or re-registers) a worker and starts its lease.
    async fn register_worker(&self, worker: &WorkerInfo, lease: Duration) -> StoreResult<()>;

    /// Registers a worker as [`QueueStore::register_worker`] does unless `max` live workers
    /// already serve any of its queues (`work --max-workers`); false if it did not register.
    /// Checked and registered in one atomic step, so of workers starting together no more
    /// than `max` pass.
    async fn register_worker_within(
        &self,
        worker: &WorkerInfo,
        lease: Duration,
        max: u32,
    ) -> StoreResult<bool>;

    /// Extends a worker's lease; reports whether it was still held, and the restart epoch.
    async fn heartbeat(&self, worker_id: &str, lease: Duration) -> StoreResult<Heartbeat>;

    /// Removes a worker's registration, handing back any jobs it still holds (no attempt used).
    async fn deregister_worker(&self, worker_id: &str) -> StoreResult<()>;

    /// Reserves up to `limit` available jobs for `worker_id`, taking from `queues` in order:
    /// a later queue is used only when the earlier ones have no available job.
    async fn reserve(&self, claim: Claim<'_>) -> StoreResult<Vec<ReservedJob>>;

    /// Settles reserved jobs; for each, whether it was applied (false: the worker no longer
    /// holds the job under that token, so the result is dropped).
    async fn settle(&self, worker_id: &str, settlements: &[Settlement]) -> StoreResult<Vec<bool>>;

    /// Settles `settlements`, then reserves up to `limit` jobs, in one round trip where the
    /// store can (one transaction: "ack batch k and claim batch k+1"). This is the worker's hot
    /// path. The default runs [`settle`](QueueStore::settle) then [`reserve`](QueueStore::reserve); if the
    /// settle succeeded and the reserve failed, it returns the settle's result and no jobs.
    async fn settle_and_reserve(
        &self,
        settlements: &[Settlement],
        claim: Claim<'_>,
    ) -> StoreResult<(Vec<bool>, Vec<ReservedJob>)> {
        let worker_id = claim.worker_id;
        let applied = if settlements.is_empty() {
            Vec::new()
        } else {
            self.settle(worker_id, settlements).await?
        };
        if claim.limit == 0 {
            return Ok((applied, Vec::new()));
        }
        match self.reserve(claim).await {
            Ok(jobs) => Ok((applied, jobs)),
            Err(e) if !applied.is_empty() => {
                tracing::warn!("reserving failed after settling: {e}");
                Ok((applied, Vec::new()))
            }
            Err(e) => Err(e),
        }
    }

    /// Returns the jobs of workers whose lease expired to their queues (refunding the attempt,
    /// counting a recovery); a job losing its worker for the `max_recoveries`-th time fails
    /// instead, as "worker lost N times".
    async fn reap(&self, max_recoveries: u32) -> StoreResult<ReapReport>;

    /// Time until the earliest delayed job in `queues` becomes available, if any is delayed.
    async fn next_available_in(&self, queues: &[String]) -> StoreResult<Option<Duration>>;

    /// A subscription to "jobs may have arrived" signals, for idle workers. Spurious wake-ups
    /// are allowed; a store that cannot signal returns [`Wakeups::none`] and workers poll.
    fn wakeups(&self) -> Wakeups;

    /// The current restart epoch (0 if never signalled).
    async fn restart_epoch(&self) -> StoreResult<i64>;
}
