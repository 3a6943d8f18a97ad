//! The store contract: the one trait every backend implements, and the conformance suite that
//! checks it.
//!
//! Everything above this module is backend-agnostic. Operations are batch-first (push many,
//! reserve up to N queue by queue in priority order, settle many), every job mutation by a
//! worker is fenced on the token handed out with its reservation, and times are computed with
//! the store's own clock (D-7).

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;

mod error;
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

pub mod conformance;

pub use error::StoreError;
pub use types::*;
pub use wakeup::{WakeupSignal, Wakeups};

/// Result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// The contract every store implements.
///
/// Implementations must keep each method atomic: a crash half-way through a call leaves the
/// store as before the call or as after it.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A short backend name: `sqlite`, `postgres`, `mysql`, `redis`.
    fn backend(&self) -> &'static str;

    /// Creates or upgrades Spool's tables. Safe to call concurrently and repeatedly.
    async fn migrate(&self) -> StoreResult<()>;

    /// Opens a second handle to the same store with its own connections, for use on another
    /// runtime (the worker's heartbeat thread, which busy handlers must not starve).
    async fn reopen(&self) -> StoreResult<Arc<dyn Store>>;

    /// Enqueues jobs; one outcome per job, in input order. A job whose id already exists is
    /// left untouched and reported as [`PushOutcome::AlreadyQueued`].
    async fn push(&self, jobs: &[NewJob]) -> StoreResult<Vec<PushOutcome>>;

    /// Registers (or re-registers) a worker and starts its lease.
    async fn register_worker(&self, worker: &WorkerInfo, lease: Duration) -> StoreResult<()>;

    /// Extends a worker's lease; reports whether it was still held, and the restart epoch.
    async fn heartbeat(&self, worker_id: &str, lease: Duration) -> StoreResult<Heartbeat>;

    /// Removes a worker's registration, handing back any jobs it still holds (no attempt used).
    async fn deregister_worker(&self, worker_id: &str) -> StoreResult<()>;

    /// Reserves up to `limit` available jobs for `worker_id`, taking from `queues` in order:
    /// a later queue is used only when the earlier ones have no available job.
    async fn reserve(
        &self,
        worker_id: &str,
        queues: &[String],
        limit: usize,
    ) -> StoreResult<Vec<ReservedJob>>;

    /// Settles reserved jobs; for each, whether it was applied (false: the worker no longer
    /// holds the job under that token, so the result is dropped).
    async fn settle(&self, worker_id: &str, settlements: &[Settlement]) -> StoreResult<Vec<bool>>;

    /// Settles `settlements`, then reserves up to `limit` jobs, in one round trip where the
    /// store can (one transaction: "ack batch k and claim batch k+1"). This is the worker's hot
    /// path. The default runs [`settle`](Store::settle) then [`reserve`](Store::reserve); if the
    /// settle succeeded and the reserve failed, it returns the settle's result and no jobs.
    async fn settle_and_reserve(
        &self,
        worker_id: &str,
        settlements: &[Settlement],
        queues: &[String],
        limit: usize,
    ) -> StoreResult<(Vec<bool>, Vec<ReservedJob>)> {
        let applied = if settlements.is_empty() {
            Vec::new()
        } else {
            self.settle(worker_id, settlements).await?
        };
        if limit == 0 {
            return Ok((applied, Vec::new()));
        }
        match self.reserve(worker_id, queues, limit).await {
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

    /// The current restart epoch (0 if never signalled).
    async fn restart_epoch(&self) -> StoreResult<i64>;

    // --- Workflows: batches, limiters, progress and results ------------------------------

    /// Creates a batch and pushes its jobs (whose `batch_id` is the batch's id) in one atomic
    /// step: either the batch and every job exist, or nothing does.
    async fn create_batch(
        &self,
        batch: &NewBatch,
        jobs: &[NewJob],
    ) -> StoreResult<Vec<PushOutcome>> {
        let _ = (batch, jobs);
        Err(self.unsupported("batches"))
    }

    /// Adds jobs to a batch: total and pending grow, and a finished batch is open again.
    /// Fails with [`StoreError::Invalid`] if there is no such batch.
    async fn add_to_batch(&self, batch_id: &str, jobs: &[NewJob]) -> StoreResult<Vec<PushOutcome>> {
        let _ = (batch_id, jobs);
        Err(self.unsupported("batches"))
    }

    /// One batch.
    async fn batch(&self, id: &str) -> StoreResult<Option<BatchInfo>> {
        let _ = id;
        Err(self.unsupported("batches"))
    }

    /// The newest batches first, at most `limit`.
    async fn batches(&self, limit: u32) -> StoreResult<Vec<BatchInfo>> {
        let _ = limit;
        Err(self.unsupported("batches"))
    }

    /// Marks a batch cancelled (and finished); its queued jobs are skipped when reserved.
    /// False if there is no such batch or it was already cancelled.
    async fn cancel_batch(&self, id: &str) -> StoreResult<bool> {
        let _ = id;
        Err(self.unsupported("batches"))
    }

    /// Deletes old batch records; returns the count.
    async fn prune_batches(&self, prune: BatchPrune) -> StoreResult<u64> {
        let _ = prune;
        Err(self.unsupported("batches"))
    }

    /// A sliding-window counter shared by every worker: counts the hits of `key` in the last
    /// `window` and records one as `mode` says, atomically.
    async fn limit(&self, key: &str, window: Duration, mode: LimitMode) -> StoreResult<LimitState> {
        let _ = (key, window, mode);
        Err(self.unsupported("rate limits"))
    }

    /// Forgets every hit of `key`.
    async fn clear_limit(&self, key: &str) -> StoreResult<()> {
        let _ = key;
        Err(self.unsupported("rate limits"))
    }

    /// Takes a concurrency slot for a reserved job if fewer than `limit` are held. The slot
    /// is freed when the job is settled, when its worker's lease expires, or after
    /// `expire_after`. A job may hold several keys; asking again for a held key is a success.
    async fn acquire_slot(&self, worker_id: &str, request: &SlotRequest) -> StoreResult<bool> {
        let _ = (worker_id, request);
        Err(self.unsupported("concurrency limits"))
    }

    /// Records a reserved job's progress (fenced like a settlement); false if the worker no
    /// longer holds it.
    async fn set_progress(
        &self,
        worker_id: &str,
        id: &str,
        token: i64,
        progress: &Progress,
    ) -> StoreResult<bool> {
        let _ = (worker_id, id, token, progress);
        Err(self.unsupported("progress"))
    }

    /// A completed job's kept record and result, while its retention lasts.
    async fn job_result(&self, id: &str) -> StoreResult<Option<CompletedJob>> {
        let _ = id;
        Err(self.unsupported("results"))
    }

    /// Deletes kept results older than `age`; returns the count.
    async fn prune_results(&self, age: Duration) -> StoreResult<u64> {
        let _ = age;
        Err(self.unsupported("results"))
    }

    /// The error for an operation this store lacks.
    fn unsupported(&self, what: &'static str) -> StoreError {
        StoreError::Unsupported {
            backend: self.backend(),
            what,
        }
    }
}

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
// A build with no store at all can only refuse every URL.
#[cfg_attr(
    not(any(
        feature = "sqlite",
        feature = "postgres",
        feature = "mysql",
        feature = "redis"
    )),
    allow(unreachable_code, unused_variables)
)]
pub async fn connect(url: &str) -> StoreResult<Arc<dyn Store>> {
    let store: Arc<dyn Store> = match url.split_once("://").map(|(scheme, _)| scheme) {
        Some("sqlite") => {
            #[cfg(feature = "sqlite")]
            {
                Arc::new(sqlite::SqliteStore::open(url).await?)
            }
            #[cfg(not(feature = "sqlite"))]
            return Err(StoreError::NotCompiled("sqlite"));
        }
        Some("postgres" | "postgresql") => {
            #[cfg(feature = "postgres")]
            {
                Arc::new(postgres::PostgresStore::open(url).await?)
            }
            #[cfg(not(feature = "postgres"))]
            return Err(StoreError::NotCompiled("postgres"));
        }
        Some("mysql" | "mariadb") => {
            #[cfg(feature = "mysql")]
            {
                Arc::new(mysql::MysqlStore::open(url).await?)
            }
            #[cfg(not(feature = "mysql"))]
            return Err(StoreError::NotCompiled("mysql"));
        }
        Some("redis" | "rediss") => {
            #[cfg(feature = "redis")]
            {
                Arc::new(self::redis::RedisStore::open(url).await?)
            }
            #[cfg(not(feature = "redis"))]
            return Err(StoreError::NotCompiled("redis"));
        }
        _ => return Err(StoreError::BadUrl(url.to_string())),
    };
    store.migrate().await?;
    Ok(store)
}

/// The store URL from `SPOOL_URL`, else [`DEFAULT_URL`].
pub fn url_from_env() -> String {
    std::env::var("SPOOL_URL").unwrap_or_else(|_| DEFAULT_URL.to_string())
}
