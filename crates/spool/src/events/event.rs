//! The events themselves.

use std::time::Duration;

use crate::{dispatch::DispatchStatus, worker::ExitReason};

/// The job an event is about. Never carries the payload, which may hold secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobMeta {
    /// The job's id.
    pub id: String,
    /// The registered job name (empty if the envelope could not be read).
    pub name: String,
    /// The queue it was dispatched to or taken from.
    pub queue: String,
    /// The attempt this event belongs to, from 1; 0 on the dispatch side.
    pub attempt: u32,
}

impl JobMeta {
    pub(crate) fn new(id: &str, name: &str, queue: &str, attempt: u32) -> JobMeta {
        JobMeta {
            id: id.to_string(),
            name: name.to_string(),
            queue: queue.to_string(),
            attempt,
        }
    }
}

/// Something a dispatcher or a worker did. The order in which a job's events arrive is fixed
/// for each outcome; see `docs/events.md`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A worker registered with the store and is about to take jobs.
    WorkerStarting {
        /// The worker's id.
        worker: String,
        /// The queues it serves, in priority order.
        queues: Vec<String>,
    },
    /// A worker stopped taking jobs; running jobs finish (or are handed back) next.
    WorkerStopping {
        /// The worker's id.
        worker: String,
        /// Why it stops.
        reason: ExitReason,
    },
    /// A worker is about to reserve jobs. [`Events::looping`](super::Events::looping)
    /// predicates decide whether it does.
    Looping {
        /// The worker's id.
        worker: String,
    },
    /// A job is about to be pushed to the store.
    JobQueueing {
        /// The job (attempt 0).
        job: JobMeta,
    },
    /// A job was pushed.
    JobQueued {
        /// The job (attempt 0).
        job: JobMeta,
        /// Queued, already queued (same id) or recorded by a fake handle.
        status: DispatchStatus,
    },
    /// A worker is about to run a job.
    JobProcessing {
        /// The job.
        job: JobMeta,
    },
    /// The handler returned without an error, or with a release or deferral (which are not
    /// errors; S-EVT-2).
    JobProcessed {
        /// The job.
        job: JobMeta,
        /// The handler asked to be put back (`JobError::release` or `JobError::defer`).
        released: bool,
    },
    /// The attempt ended in an error, a panic or a timeout.
    JobExceptionOccurred {
        /// The job.
        job: JobMeta,
        /// The error message.
        error: String,
    },
    /// After an exception, the job goes back to its queue to be retried after `delay`.
    JobReleasedAfterException {
        /// The job.
        job: JobMeta,
        /// The backoff before the retry.
        delay: Duration,
    },
    /// The handler released the job (`JobError::release`): back after `delay`, using the attempt.
    JobReleased {
        /// The job.
        job: JobMeta,
        /// How long until it is available again.
        delay: Duration,
    },
    /// The handler deferred the job (`JobError::defer`): back after `delay`, attempt refunded.
    JobDeferred {
        /// The job.
        job: JobMeta,
        /// How long until it is available again.
        delay: Duration,
        /// The handler's reason.
        reason: String,
    },
    /// The job failed for good and goes to the failed store (after its `failed` hook ran).
    JobFailed {
        /// The job.
        job: JobMeta,
        /// The final error, as the failed record holds it.
        error: String,
    },
    /// The attempt hit its timeout; the handler's task was cancelled.
    JobTimedOut {
        /// The job.
        job: JobMeta,
        /// The timeout.
        after: Duration,
    },
    /// A worker shutdown interrupted the job and handed it back (no attempt used).
    JobHandedBack {
        /// The job.
        job: JobMeta,
    },
    /// The attempt is over, whatever its outcome: the last event of every
    /// [`JobProcessing`](Event::JobProcessing).
    JobAttempted {
        /// The job.
        job: JobMeta,
    },
    /// A failed job was put back on its queue (`spool retry`, [`Spool::retry_failed`](crate::Spool::retry_failed)).
    JobRetryRequested {
        /// The job's id (kept across retries).
        id: String,
    },
    /// A batch and its jobs were stored ([`Spool::batch`](crate::Spool::batch)).
    BatchDispatched {
        /// The batch's id.
        id: String,
        /// Its name.
        name: String,
        /// Jobs stored.
        jobs: usize,
    },
    /// A batch was cancelled ([`Spool::cancel_batch`](crate::Spool::cancel_batch)).
    BatchCancelled {
        /// The batch's id.
        id: String,
    },
}

impl Event {
    /// A stable dotted name, e.g. `job.processing`, as used in logs.
    ///
    /// ```
    /// let e = spool::events::Event::JobRetryRequested { id: "7".into() };
    /// assert_eq!(e.name(), "job.retry_requested");
    /// ```
    pub fn name(&self) -> &'static str {
        match self {
            Event::WorkerStarting { .. } => "worker.starting",
            Event::WorkerStopping { .. } => "worker.stopping",
            Event::Looping { .. } => "worker.looping",
            Event::JobQueueing { .. } => "job.queueing",
            Event::JobQueued { .. } => "job.queued",
            Event::JobProcessing { .. } => "job.processing",
            Event::JobProcessed { .. } => "job.processed",
            Event::JobExceptionOccurred { .. } => "job.exception_occurred",
            Event::JobReleasedAfterException { .. } => "job.released_after_exception",
            Event::JobReleased { .. } => "job.released",
            Event::JobDeferred { .. } => "job.deferred",
            Event::JobFailed { .. } => "job.failed",
            Event::JobTimedOut { .. } => "job.timed_out",
            Event::JobHandedBack { .. } => "job.handed_back",
            Event::JobAttempted { .. } => "job.attempted",
            Event::JobRetryRequested { .. } => "job.retry_requested",
            Event::BatchDispatched { .. } => "batch.dispatched",
            Event::BatchCancelled { .. } => "batch.cancelled",
        }
    }

    /// The job the event is about, if it is a job event with known metadata.
    pub fn job(&self) -> Option<&JobMeta> {
        match self {
            Event::JobQueueing { job }
            | Event::JobQueued { job, .. }
            | Event::JobProcessing { job }
            | Event::JobProcessed { job, .. }
            | Event::JobExceptionOccurred { job, .. }
            | Event::JobReleasedAfterException { job, .. }
            | Event::JobReleased { job, .. }
            | Event::JobDeferred { job, .. }
            | Event::JobFailed { job, .. }
            | Event::JobTimedOut { job, .. }
            | Event::JobHandedBack { job }
            | Event::JobAttempted { job } => Some(job),
            Event::WorkerStarting { .. }
            | Event::WorkerStopping { .. }
            | Event::Looping { .. }
            | Event::JobRetryRequested { .. }
            | Event::BatchDispatched { .. }
            | Event::BatchCancelled { .. } => None,
        }
    }
}
