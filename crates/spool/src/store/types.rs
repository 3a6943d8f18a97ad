//! The values that cross the store contract.

use std::time::Duration;

use serde::Serialize;

use super::NewJob;

/// What a push did with one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PushOutcome {
    /// Stored.
    Queued,
    /// A job with this id already exists, or another job holds its unique lock; nothing
    /// changed (idempotent dispatch, unique jobs).
    AlreadyQueued,
}

/// A worker process, as registered in the store.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerInfo {
    /// Unique per process.
    pub id: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// Queues served, in priority order.
    pub queues: Vec<String>,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// False when the worker's lease had already expired and its jobs were handed to others.
    pub lease_kept: bool,
    /// The current restart epoch (see [`crate::store::AdminStore::signal_restart`]).
    pub restart_epoch: i64,
}

/// What a worker asks the store for: up to `limit` jobs for `worker_id`, taken from `queues` in
/// order (a later queue only when the earlier ones have no available job).
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    /// The reserving worker, whose lease the jobs are held under.
    pub worker_id: &'a str,
    /// Queues in strict priority order.
    pub queues: &'a [String],
    /// The most jobs to reserve (the worker's free slots).
    pub limit: usize,
}

impl<'a> Claim<'a> {
    /// Up to `limit` jobs for `worker_id` from `queues`, in order.
    pub fn new(worker_id: &'a str, queues: &'a [String], limit: usize) -> Self {
        Claim {
            worker_id,
            queues,
            limit,
        }
    }

    /// Whether the claim can get nothing (no room, or no queue): stores answer it without a
    /// round trip.
    #[cfg_attr(not(any(feature = "mysql", feature = "redis")), allow(dead_code))]
    pub(crate) fn asks_nothing(&self) -> bool {
        self.limit == 0 || self.queues.is_empty()
    }
}

/// A reserved job as its worker holds it: the fence every write about the job carries.
#[derive(Debug, Clone, Copy)]
pub struct Held<'a> {
    /// The worker holding the job.
    pub worker_id: &'a str,
    /// The job's id.
    pub id: &'a str,
    /// The token of the reservation.
    pub token: i64,
}

impl<'a> Held<'a> {
    /// The job `id` held by `worker_id` under `token`.
    pub fn new(worker_id: &'a str, id: &'a str, token: i64) -> Self {
        Held {
            worker_id,
            id,
            token,
        }
    }
}

/// A job handed to a worker under its lease.
#[derive(Debug, Clone)]
pub struct ReservedJob {
    /// The job's id.
    pub id: String,
    /// The queue it came from.
    pub queue: String,
    /// The encoded envelope, exactly as pushed (it may be malformed: the worker checks).
    pub envelope: String,
    /// The fencing token: bumped on every reservation; settlements must present it.
    pub token: i64,
    /// Attempts including this one.
    pub attempts: u32,
    /// Times its worker died while running it.
    pub recoveries: u32,
    /// Times it was deferred without using an attempt.
    pub deferrals: u32,
    /// Attempts that ended in an error or timeout.
    pub exceptions: u32,
    /// Absolute retry deadline, ms since the epoch.
    pub retry_until: Option<i64>,
    /// The error of the previous attempt, if any.
    pub last_error: Option<String>,
    /// The store's clock at reservation, ms since the epoch.
    pub reserved_at: i64,
    /// When the job became available, ms since the epoch (for wait-time metrics).
    pub available_at: i64,
    /// Why the store could not read the job as written (an envelope that is not UTF-8 text,
    /// a time that is not a number, ...), when it could not; `envelope` then holds what could
    /// be read. The worker fails such a job with this reason without running it.
    pub unreadable: Option<String>,
}

/// How a worker settles a reserved job. Every settlement is fenced on `(worker, token)`.
#[derive(Debug, Clone)]
pub enum Settlement {
    /// Done: delete the job, count it processed, and apply its side effects in the same
    /// atomic step: release its unique lock and limiter slots, count it in its batch (firing
    /// the batch's callbacks when due), keep its result, push its follow-ups.
    Complete {
        /// Job id.
        id: String,
        /// Fencing token from the reservation.
        token: i64,
        /// Jobs to push with the completion (the next link of a chain).
        follow_ups: Vec<NewJob>,
        /// A small result to keep for the job's retention time (JSON).
        result: Option<String>,
    },
    /// Put back, available after `delay`.
    Release {
        /// Job id.
        id: String,
        /// Fencing token from the reservation.
        token: i64,
        /// How long until it is available again.
        delay: Duration,
        /// What the release means for the counters.
        kind: ReleaseKind,
        /// The error to remember for the next attempt's failure message.
        error: Option<String>,
    },
    /// Failed for good: move to the failed store.
    Fail {
        /// Job id.
        id: String,
        /// Fencing token from the reservation.
        token: i64,
        /// The final error.
        error: String,
        /// Its causes, outermost first.
        causes: Vec<String>,
        /// Jobs to push with the failure (a chain's catch handler).
        follow_ups: Vec<NewJob>,
    },
}

impl Settlement {
    /// A plain completion: no follow-ups, no result.
    pub fn complete(id: impl Into<String>, token: i64) -> Settlement {
        Settlement::Complete {
            id: id.into(),
            token,
            follow_ups: Vec::new(),
            result: None,
        }
    }

    /// A plain final failure.
    pub fn fail(
        id: impl Into<String>,
        token: i64,
        error: String,
        causes: Vec<String>,
    ) -> Settlement {
        Settlement::Fail {
            id: id.into(),
            token,
            error,
            causes,
            follow_ups: Vec::new(),
        }
    }

    /// The reservation token this settlement is fenced on.
    pub fn token(&self) -> i64 {
        match self {
            Settlement::Complete { token, .. }
            | Settlement::Release { token, .. }
            | Settlement::Fail { token, .. } => *token,
        }
    }

    /// The job id this settles.
    pub fn id(&self) -> &str {
        match self {
            Settlement::Complete { id, .. }
            | Settlement::Release { id, .. }
            | Settlement::Fail { id, .. } => id,
        }
    }
}

/// The counter effect of a release (D-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseKind {
    /// A retry after an error or timeout: the attempt counts and so does the exception.
    RetryAfterError,
    /// A release by the handler: the attempt counts.
    Released,
    /// A deferral (rate limit, Retry-After): the attempt is refunded, deferrals + 1.
    Deferred,
    /// Handed back by a graceful shutdown: the attempt is refunded.
    Shutdown,
}

impl ReleaseKind {
    /// How the release changes the job's counters, as 0/1 for SQL:
    /// `(attempt refunded, deferral added, exception added)`.
    pub fn counter_effects(self) -> (i64, i64, i64) {
        match self {
            ReleaseKind::RetryAfterError => (0, 0, 1),
            ReleaseKind::Released => (0, 0, 0),
            ReleaseKind::Deferred => (1, 1, 0),
            ReleaseKind::Shutdown => (1, 0, 0),
        }
    }
}

/// What the reaper did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReapReport {
    /// Jobs of dead workers put back on their queues.
    pub recovered: u64,
    /// Jobs failed as poison pills ("worker lost N times").
    pub failed: u64,
    /// Worker registrations removed.
    pub workers_removed: u64,
}

/// The state of a job that is still queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Ready to run.
    Pending,
    /// Waiting until its available time.
    Delayed,
    /// Held by a worker.
    Reserved,
}

impl std::str::FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pending" => Ok(JobState::Pending),
            "delayed" => Ok(JobState::Delayed),
            "reserved" => Ok(JobState::Reserved),
            _ => Err(format!(
                "unknown state `{s}`: use pending, delayed or reserved"
            )),
        }
    }
}

/// A queued job, for `spool jobs` and `spool job ID`.
#[derive(Debug, Clone, Serialize)]
pub struct JobInfo {
    /// Job id.
    pub id: String,
    /// Queue.
    pub queue: String,
    /// Job name.
    pub job: String,
    /// State now.
    pub state: JobState,
    /// Attempts so far.
    pub attempts: u32,
    /// Worker deaths survived.
    pub recoveries: u32,
    /// Deferrals.
    pub deferrals: u32,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// When it is (or was) available, ms since the epoch.
    pub available_at: i64,
    /// The worker holding it.
    pub worker: Option<String>,
    /// When the holding worker reserved it, ms since the epoch (store clock); `None` unless
    /// reserved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reserved_at: Option<i64>,
    /// The envelope as stored.
    pub envelope: String,
    /// Progress the handler reported, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// The dispatcher's tags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Why the job cannot run as stored (an envelope that is not UTF-8 text, not JSON, or
    /// past the size limit), when it cannot: a worker fails it with this reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

/// Progress a running job reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// 0 to 100.
    pub percent: u8,
    /// What it is doing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A completed job's short record: kept for every completed job for the history's retention
/// (see [`crate::store::AdminStore::completed_jobs`]), and with its result while that is kept
/// (see [`crate::store::WorkflowStore::job_result`]). Never its payload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompletedJob {
    /// Job id.
    pub id: String,
    /// Queue.
    pub queue: String,
    /// Job name.
    pub job: String,
    /// The batch it belonged to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    /// The dispatcher's tags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Attempts it took, the completing one included (0 when only its result is left: the
    /// history record was pruned first, or written before Spool kept a history).
    pub attempts: u32,
    /// When it was dispatched, RFC 3339 (`None` when only its result is left).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enqueued_at: Option<String>,
    /// When its completing attempt started, RFC 3339 (`None` when only its result is left).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When it completed, RFC 3339.
    pub completed_at: String,
    /// Whether the handler stored a result that is still kept.
    pub has_result: bool,
    /// The result the handler stored (JSON): given by
    /// [`job_result`](crate::store::WorkflowStore::job_result), never in listings (read it by
    /// id).
    pub result: Option<serde_json::Value>,
}

/// Which queued jobs to list.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only this queue.
    pub queue: Option<String>,
    /// Only this state.
    pub state: Option<JobState>,
    /// At most this many (default 100).
    pub limit: Option<u32>,
}

/// A record in the failed store.
#[derive(Debug, Clone, Serialize)]
pub struct FailedJob {
    /// The job's id (what `retry`, `forget` and `failed show` take).
    pub id: String,
    /// Queue.
    pub queue: String,
    /// Job name.
    pub job: String,
    /// The final error.
    pub error: String,
    /// Its cause chain, outermost first.
    pub causes: Vec<String>,
    /// Attempts made.
    pub attempts: u32,
    /// When it failed, RFC 3339.
    pub failed_at: String,
    /// The dispatcher's tags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The envelope as stored (for `failed show`).
    #[serde(skip)]
    pub envelope: String,
}

/// Which failed records to list.
#[derive(Debug, Clone, Default)]
pub struct FailedFilter {
    /// Only this queue.
    pub queue: Option<String>,
    /// At most this many (default 100).
    pub limit: Option<u32>,
}

/// Which failed jobs to retry.
#[derive(Debug, Clone)]
pub enum RetrySelector {
    /// These ids.
    Ids(Vec<String>),
    /// All of them, optionally only on one queue.
    All {
        /// Only this queue.
        queue: Option<String>,
    },
    /// The failed jobs of one batch.
    Batch(String),
}

/// A batch to create: its jobs carry its id in their envelopes.
#[derive(Debug, Clone, Default)]
pub struct NewBatch {
    /// The batch id (a UUID v7 unless chosen).
    pub id: String,
    /// A name for listings.
    pub name: String,
    /// Failures don't cancel the batch; `then` still needs every job to succeed.
    pub allow_failures: bool,
    /// Pushed once when every job has succeeded.
    pub then: Option<NewJob>,
    /// Pushed once, at the first failure.
    pub catch: Option<NewJob>,
    /// Pushed once, when every job has run (succeeded, failed for good or been skipped).
    pub finally: Option<NewJob>,
}

/// A batch as stored, for `spool batches`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchInfo {
    /// Batch id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Jobs in the batch.
    pub total: u64,
    /// Jobs that have not finished yet (neither succeeded nor failed for good).
    pub pending: u64,
    /// Jobs that failed for good (and were not retried since).
    pub failed: u64,
    /// Percent of jobs finished, `(total - pending) / total`: reaches 100 once every job ran,
    /// failures included.
    pub progress: u8,
    /// Whether failures leave the batch running.
    pub allow_failures: bool,
    /// Ids of its failed jobs, the first 1,000 (`failed` counts them all; the failed store keeps
    /// every record with its batch id).
    pub failed_ids: Vec<String>,
    /// When it was created, RFC 3339.
    pub created_at: String,
    /// When it was cancelled, RFC 3339.
    pub cancelled_at: Option<String>,
    /// When every job had run, RFC 3339.
    pub finished_at: Option<String>,
}

impl BatchInfo {
    /// The progress percentage for counts (100 for an empty batch).
    pub fn percent(total: u64, pending: u64) -> u8 {
        if total == 0 {
            return 100;
        }
        ((total - pending.min(total)) * 100 / total) as u8
    }
}

/// Which batches to prune (S-BATCH-8).
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchPrune {
    /// Finished batches (cancelled ones included) finished longer ago than this.
    pub finished: Option<Duration>,
    /// Unfinished batches created longer ago than this.
    pub unfinished: Option<Duration>,
    /// Cancelled batches created longer ago than this.
    pub cancelled: Option<Duration>,
}

/// How a limiter call uses its sliding window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitMode {
    /// Record a hit only if fewer than this many hits are in the window.
    Acquire(u32),
    /// Record a hit whatever the count.
    Record,
    /// Only count.
    Peek,
}

/// A limiter's state after a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitState {
    /// Whether the hit was recorded (always true for `Record`, false for `Peek`).
    pub hit: bool,
    /// Hits in the window, after this call.
    pub count: u32,
    /// Until the oldest hit in the window leaves it (zero when the window is empty).
    pub resets_in: Duration,
}

/// A concurrency slot request: at most `limit` jobs hold `key` at once.
#[derive(Debug, Clone)]
pub struct SlotRequest {
    /// The limiter key.
    pub key: String,
    /// Most holders at once.
    pub limit: u32,
    /// The job asking, fenced on its reservation like a settlement.
    pub job_id: String,
    /// Its reservation token.
    pub token: i64,
    /// The slot is freed after this long even if the job is still running.
    pub expire_after: Option<Duration>,
}

/// Formats milliseconds since the epoch as RFC 3339 (UTC, millisecond precision).
pub fn rfc3339_ms(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}
