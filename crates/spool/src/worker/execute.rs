//! Runs one reserved job: decode, checks, the handler under its timeout with panics caught,
//! then the retry decision turned into a settlement.

use std::{
    borrow::Cow,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::watch;
use tracing::Instrument;

use super::{
    WorkerConfig,
    lifecycle::{Shutdown, reached},
    workflow,
};
#[cfg(feature = "encryption")]
use crate::encryption::{DecryptError, Keyring};
use crate::{
    envelope::{Envelope, EnvelopeError, Payload},
    events::{Event, JobMeta},
    job::StoreLink,
    job::{JobContext, JobErrorKind, JobFailure},
    options::Backoff,
    registry::Registry,
    retry::{self, AttemptEnd, Counters, Decision, Policy},
    store::{ReleaseKind, ReservedJob, Settlement, Store},
};

/// What the worker counts.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) completed: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) handed_back: AtomicU64,
}

/// Everything a job run needs from its worker.
pub(crate) struct Executor {
    registry: Arc<Registry>,
    config: Arc<WorkerConfig>,
    tally: Arc<Tally>,
    #[cfg(feature = "encryption")]
    keyring: Option<Keyring>,
    /// For handlers and middleware: progress, results, limits, batches.
    store: Arc<dyn Store>,
    worker_id: String,
}

/// How an attempt ended, as far as events tell it (the retry decision consumes the details).
#[derive(Clone, Copy)]
enum Ending {
    /// Success, or a release, deferral or `fail` the handler chose: no exception.
    Handled,
    /// An error or a panic.
    Exception,
    /// The timeout cancelled the handler.
    TimedOut(Duration),
}

impl Executor {
    pub(crate) fn new(
        registry: Arc<Registry>,
        config: Arc<WorkerConfig>,
        tally: Arc<Tally>,
        store: Arc<dyn Store>,
        worker_id: String,
    ) -> Self {
        Executor {
            store,
            worker_id,
            registry,
            #[cfg(feature = "encryption")]
            keyring: config.keyring.clone(),
            config,
            tally,
        }
    }

    /// Runs the job and returns how to settle it.
    pub(crate) async fn run(
        &self,
        job: ReservedJob,
        shutdown: watch::Receiver<Shutdown>,
    ) -> Settlement {
        let envelope = Envelope::decode(&job.envelope);
        let name = match &envelope {
            Ok(e) => e.job.clone(),
            Err(_) => job_name(&job.envelope),
        };
        let meta = JobMeta::new(&job.id, &name, &job.queue, job.attempts);
        let events = &self.config.events;
        events.emit(|| Event::JobProcessing { job: meta.clone() });
        let settlement = self.settle(job, envelope, &meta, shutdown).await;
        events.emit(|| Event::JobAttempted { job: meta });
        let counter = match &settlement {
            Settlement::Complete { .. } => &self.tally.completed,
            Settlement::Fail { .. } => &self.tally.failed,
            Settlement::Release {
                kind: ReleaseKind::Shutdown,
                ..
            } => &self.tally.handed_back,
            Settlement::Release { .. } => return settlement,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        settlement
    }

    async fn settle(
        &self,
        job: ReservedJob,
        envelope: Result<Envelope, EnvelopeError>,
        meta: &JobMeta,
        shutdown: watch::Receiver<Shutdown>,
    ) -> Settlement {
        let events = &self.config.events;
        // The job cannot run: it fails at once, as a last attempt's exception would (S-EVT-1).
        let fail = |error: String| {
            tracing::warn!(job_id = %job.id, queue = %job.queue, "{error}");
            events.emit(|| Event::JobFailed {
                job: meta.clone(),
                error: error.clone(),
            });
            events.emit(|| Event::JobExceptionOccurred {
                job: meta.clone(),
                error: error.clone(),
            });
            Settlement::fail(job.id.clone(), job.token, error, vec![])
        };
        let envelope = match envelope {
            Ok(envelope) => envelope,
            Err(e) => return fail(e.to_string()),
        };
        let Some(handler) = self.registry.get(&envelope.job).cloned() else {
            return fail(format!(
                "unknown job type `{}`: no handler is registered under that name in this worker",
                envelope.job
            ));
        };
        if self.registry.is_privileged(&envelope.job) && !self.config.allow.contains(&envelope.job)
        {
            return fail(format!("start the worker with --allow {}", envelope.job));
        }
        let payload = match self.open(&envelope) {
            Ok(payload) => payload,
            Err(error) => return fail(format!("payload decryption failed: {error}")),
        };

        let options = envelope.options.clone().or(&self.config.defaults);
        let policy = Policy {
            tries: options.tries.unwrap_or(1),
            backoff: options
                .backoff
                .clone()
                .unwrap_or_else(|| Backoff::List(vec![])),
            max_exceptions: options.max_exceptions,
            fail_on_timeout: options.fail_on_timeout,
            max_deferrals: self.config.max_deferrals,
        };
        let counters = Counters {
            attempts: job.attempts,
            exceptions: job.exceptions,
            deferrals: job.deferrals,
            retry_until: job.retry_until,
            now: job.reserved_at,
        };
        if let Err(error) = retry::check_at_pickup(&policy, counters, job.last_error.as_deref()) {
            return fail(error);
        }

        let ctx = JobContext {
            id: envelope.id.clone(),
            job: envelope.job.clone(),
            queue: job.queue.clone(),
            attempt: job.attempts,
            recoveries: job.recoveries,
            deferrals: job.deferrals,
            batch_id: envelope.batch_id.clone(),
            link: Some(Arc::new(StoreLink {
                store: self.store.clone(),
                worker_id: self.worker_id.clone(),
                token: job.token,
                result: Mutex::new(None),
            })),
        };
        if self.batch_cancelled(&envelope).await {
            // Jobs of a cancelled batch are skipped: done without running (S-MW-5).
            tracing::info!(job_id = %job.id, "skipped: its batch was cancelled");
            events.emit(|| Event::JobProcessed {
                job: meta.clone(),
                released: false,
            });
            return Settlement::complete(job.id, job.token);
        }
        let span = tracing::info_span!(
            "job",
            id = %job.id,
            job = %envelope.job,
            queue = %job.queue,
            attempt = job.attempts,
            elapsed_ms = tracing::field::Empty,
        );
        let timeout = options.timeout.filter(|t| !t.is_zero());
        let started = Instant::now();
        let end = run_handler(handler.run(&payload, ctx.clone()), timeout, shutdown, &span).await;
        span.record("elapsed_ms", started.elapsed().as_millis() as u64);
        let Some(end) = end else {
            span.in_scope(|| tracing::info!("handed back by shutdown"));
            events.emit(|| Event::JobHandedBack { job: meta.clone() });
            return Settlement::Release {
                id: job.id,
                token: job.token,
                delay: Duration::ZERO,
                kind: ReleaseKind::Shutdown,
                error: None,
            };
        };
        let ending = match &end {
            AttemptEnd::Success
            | AttemptEnd::Error {
                kind: JobErrorKind::Fail | JobErrorKind::Release(_) | JobErrorKind::Defer(_),
                ..
            } => Ending::Handled,
            AttemptEnd::Error { .. } | AttemptEnd::Panicked { .. } => Ending::Exception,
            AttemptEnd::TimedOut { after } => Ending::TimedOut(*after),
        };
        if let Ending::TimedOut(after) = ending {
            events.emit(|| Event::JobTimedOut {
                job: meta.clone(),
                after,
            });
        }
        let counters = Counters {
            now: job.reserved_at + started.elapsed().as_millis() as i64,
            ..counters
        };
        let (id, token) = (job.id, job.token);
        let processed = |released| {
            events.emit(|| Event::JobProcessed {
                job: meta.clone(),
                released,
            })
        };
        let exception = |error: &str| {
            events.emit(|| Event::JobExceptionOccurred {
                job: meta.clone(),
                error: error.to_string(),
            })
        };
        match retry::decide(&policy, counters, end) {
            Decision::Complete => {
                span.in_scope(|| tracing::debug!("done"));
                processed(false);
                Settlement::Complete {
                    id,
                    token,
                    follow_ups: [
                        workflow::next_links(&envelope),
                        workflow::batch_progress(&envelope, true),
                    ]
                    .concat(),
                    result: ctx.take_result(),
                }
            }
            Decision::Retry {
                delay,
                exception: is_exception,
                error,
            } => {
                span.in_scope(|| tracing::info!(retry_in_ms = delay.as_millis() as u64, "{error}"));
                let kind = if is_exception {
                    exception(&error);
                    events.emit(|| Event::JobReleasedAfterException {
                        job: meta.clone(),
                        delay,
                    });
                    ReleaseKind::RetryAfterError
                } else {
                    processed(true);
                    events.emit(|| Event::JobReleased {
                        job: meta.clone(),
                        delay,
                    });
                    ReleaseKind::Released
                };
                Settlement::Release {
                    id,
                    token,
                    delay,
                    kind,
                    error: Some(error),
                }
            }
            Decision::Defer { delay, reason } => {
                span.in_scope(|| {
                    tracing::info!(defer_ms = delay.as_millis() as u64, "deferred: {reason}")
                });
                processed(true);
                events.emit(|| Event::JobDeferred {
                    job: meta.clone(),
                    delay,
                    reason: reason.clone(),
                });
                Settlement::Release {
                    id,
                    token,
                    delay,
                    kind: ReleaseKind::Deferred,
                    error: Some(reason),
                }
            }
            Decision::Fail { error, causes } => {
                span.in_scope(|| tracing::warn!("failed: {error}"));
                let failure = JobFailure {
                    error: error.clone(),
                    causes: causes.clone(),
                };
                // The hook gets a freshly decoded job (S-JOB-5) and its own time limit.
                let hook = handler.failed(&payload, ctx, failure);
                let limit = timeout.unwrap_or(Duration::from_secs(60));
                if tokio::time::timeout(limit, hook.instrument(span.clone()))
                    .await
                    .is_err()
                {
                    span.in_scope(|| tracing::warn!("the failed() hook timed out"));
                }
                events.emit(|| Event::JobFailed {
                    job: meta.clone(),
                    error: error.clone(),
                });
                match ending {
                    // The handler chose to fail (or deferred too often): no exception (S-EVT-2).
                    Ending::Handled => processed(false),
                    Ending::Exception | Ending::TimedOut(_) => exception(&error),
                }
                let follow_ups = [
                    workflow::chain_catch(&envelope, &error),
                    workflow::batch_progress(&envelope, false),
                ]
                .concat();
                Settlement::Fail {
                    id,
                    token,
                    error,
                    causes,
                    follow_ups,
                }
            }
        }
    }

    /// The payload's JSON: as stored, or opened with the worker's keys.
    #[cfg(feature = "encryption")]
    fn open<'e>(&self, envelope: &'e Envelope) -> Result<Cow<'e, str>, DecryptError> {
        match &envelope.payload {
            Payload::Plain(raw) => Ok(Cow::Borrowed(raw.get())),
            Payload::Encrypted(sealed) => {
                crate::encryption::open(self.keyring.as_ref(), &envelope.job, &envelope.id, sealed)
                    .map(Cow::Owned)
            }
        }
    }

    #[cfg(not(feature = "encryption"))]
    fn open<'e>(&self, envelope: &'e Envelope) -> Result<Cow<'e, str>, &'static str> {
        match &envelope.payload {
            Payload::Plain(raw) => Ok(Cow::Borrowed(raw.get())),
            Payload::Encrypted(_) => {
                Err("this worker was built without Spool's `encryption` feature")
            }
        }
    }
}

impl Executor {
    /// Whether the job belongs to a batch that was cancelled. A store error counts as "not
    /// cancelled": running a job of a cancelled batch is the lesser harm.
    async fn batch_cancelled(&self, envelope: &Envelope) -> bool {
        let Some(batch_id) = envelope
            .batch_id
            .as_ref()
            .filter(|_| !envelope.batch_callback)
        else {
            return false;
        };
        match self.store.batch(batch_id).await {
            Ok(batch) => batch.is_some_and(|b| b.cancelled_at.is_some()),
            Err(e) => {
                tracing::warn!(batch_id, "cannot read the job's batch: {e}");
                false
            }
        }
    }
}

/// The job name of an envelope that does not decode, if its `job` field can still be read.
fn job_name(envelope: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Name {
        job: String,
    }
    serde_json::from_str::<Name>(envelope)
        .map(|n| n.job)
        .unwrap_or_default()
}

/// Runs the handler in its own task (so a panic is caught and a timeout can abandon it).
/// `None` means the worker is stopping now and the job must be handed back.
async fn run_handler(
    handler: crate::registry::BoxFuture<crate::job::JobResult>,
    timeout: Option<Duration>,
    mut shutdown: watch::Receiver<Shutdown>,
    span: &tracing::Span,
) -> Option<AttemptEnd> {
    let mut task = tokio::spawn(handler.instrument(span.clone()));
    let deadline = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        joined = &mut task => Some(match joined {
            Ok(Ok(())) => AttemptEnd::Success,
            Ok(Err(e)) => AttemptEnd::Error { kind: e.kind, message: e.message, causes: e.causes },
            Err(join) if join.is_panic() => AttemptEnd::Panicked { message: panic_message(join.into_panic()) },
            Err(_) => AttemptEnd::Panicked { message: "the job's task was cancelled".into() },
        }),
        () = deadline => {
            // A handler stuck in blocking code cannot be stopped from here; its result is
            // ignored and the job is settled now (W-10: cancel the task, not the process).
            task.abort();
            Some(AttemptEnd::TimedOut { after: timeout.unwrap_or_default() })
        }
        () = reached(&mut shutdown, Shutdown::Immediate) => {
            task.abort();
            None
        }
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".into())
}
