//! Runs one reserved job as its steps: prepare (decode, checks), run the handler under its
//! timeout with panics caught, take the retry decision, then settle and tell its events (the
//! mapping to a settlement and events is the pure `outcome::settle`).

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
    outcome::{self, Ending, Notice, Outcome, Settled},
    records::KeptRecords,
};
#[cfg(feature = "encryption")]
use crate::encryption::{DecryptError, Keyring};
use crate::{
    envelope::{Envelope, EnvelopeError, Payload},
    events::{Event, JobMeta},
    job::StoreLink,
    job::{JobContext, JobFailure},
    metrics::{Attempt, Counter, Fold},
    options::Backoff,
    registry::{ErasedJob, Registry},
    retry::{self, AttemptEnd, Counters, Decision, Policy},
    store::{ReleaseKind, ReservedJob, Settlement, Store},
};

/// What the worker counts.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) completed: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) handed_back: AtomicU64,
    /// Jobs running now.
    pub(crate) running: AtomicU64,
    /// Metrics per minute, queue and job name since the last write, and each queue's run
    /// times since the last mean was taken.
    pub(crate) metrics: Fold,
}

/// What an attempt tells its metrics besides its settlement.
#[derive(Debug, Default)]
struct RunFacts {
    /// Done without running: its batch was cancelled.
    skipped: bool,
    /// How long the handler ran, if it ran to an end.
    ran: Option<Duration>,
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
    /// Completed jobs' kept records, deleted once their completion is written.
    records: Arc<KeptRecords>,
}

impl Executor {
    pub(crate) fn new(
        registry: Arc<Registry>,
        config: Arc<WorkerConfig>,
        tally: Arc<Tally>,
        store: Arc<dyn Store>,
        worker_id: String,
        records: Arc<KeptRecords>,
    ) -> Self {
        Executor {
            store,
            worker_id,
            records,
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
        self.tally.running.fetch_add(1, Ordering::Relaxed);
        events.emit(|| Event::JobProcessing { job: meta.clone() });
        // A row the store could not read as written fails with the store's reason, never
        // runs on a guess.
        let unreadable = job.unreadable.clone().or_else(|| {
            crate::store::unreadable::oversized(&job.envelope, self.config.max_payload)
        });
        let (queue, wait_ms) = (job.queue.clone(), job.reserved_at - job.available_at);
        let mut facts = RunFacts::default();
        let settlement = match unreadable {
            Some(reason) => self.cannot_run(job, &meta, reason).await,
            None => {
                self.attempt(job, envelope, &meta, shutdown, &mut facts)
                    .await
            }
        };
        let counter = match &settlement {
            Settlement::Complete { .. } if facts.skipped => Some(Counter::Skipped),
            Settlement::Complete { .. } => Some(Counter::Completed),
            Settlement::Fail { .. } => Some(Counter::Failed),
            Settlement::Release { kind, .. } => match kind {
                ReleaseKind::RetryAfterError => Some(Counter::Retried),
                ReleaseKind::Released => Some(Counter::Released),
                ReleaseKind::Deferred => Some(Counter::Deferred),
                ReleaseKind::Shutdown => None,
            },
        };
        self.tally.running.fetch_sub(1, Ordering::Relaxed);
        let attempt = Attempt {
            wait_ms,
            run: facts.ran,
            counter,
        };
        self.tally
            .metrics
            .note(crate::now_ms(), &queue, &name, attempt);
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

    /// The attempt as its steps: prepare → run the handler → retry decision → settlement and
    /// events.
    async fn attempt(
        &self,
        job: ReservedJob,
        envelope: Result<Envelope, EnvelopeError>,
        meta: &JobMeta,
        shutdown: watch::Receiver<Shutdown>,
        facts: &mut RunFacts,
    ) -> Settlement {
        let envelope = match envelope {
            Ok(envelope) => envelope,
            Err(e) => return self.cannot_run(job, meta, e.to_string()).await,
        };
        let prepared = match self.prepare(&job, &envelope) {
            Ok(prepared) => prepared,
            Err(error) => return self.cannot_run(job, meta, error).await,
        };
        if self.batch_cancelled(&envelope).await {
            tracing::info!(job_id = %job.id, "skipped: its batch was cancelled");
            facts.skipped = true;
            let settled = outcome::settle(job.id, job.token, Outcome::Skipped);
            return self.tell(settled, meta, |_| {}, None).await;
        }
        let span = tracing::info_span!(
            "job",
            queue = %job.queue,
            job = %envelope.job,
            id = %job.id,
            attempt = job.attempts,
            elapsed_ms = tracing::field::Empty,
            trace_id = tracing::field::Empty,
            parent_span_id = tracing::field::Empty,
        );
        crate::trace::join(&span, envelope.trace.as_ref());
        let started = Instant::now();
        let run = prepared
            .handler
            .run(&prepared.payload, prepared.ctx.clone());
        let end = run_handler(run, prepared.timeout, shutdown, &span).await;
        span.record("elapsed_ms", started.elapsed().as_millis() as u64);
        let Some(end) = end else {
            span.in_scope(|| tracing::info!("handed back by shutdown"));
            let settled = outcome::settle(job.id, job.token, Outcome::HandedBack);
            return self.tell(settled, meta, |_| {}, None).await;
        };
        facts.ran = Some(started.elapsed());
        let mut prepared = prepared;
        prepared.counters.now = job.reserved_at + started.elapsed().as_millis() as i64;
        self.decide(job, &envelope, prepared, end, &span, meta)
            .await
    }

    /// The retry decision on how the handler ended, and the settlement and events it comes to.
    async fn decide(
        &self,
        job: ReservedJob,
        envelope: &Envelope,
        prepared: Prepared<'_>,
        end: AttemptEnd,
        span: &tracing::Span,
        meta: &JobMeta,
    ) -> Settlement {
        let Prepared {
            handler,
            payload,
            policy,
            counters,
            timeout,
            ctx,
        } = prepared;
        let ending = Ending::of(&end);
        let decision = retry::decide(&policy, counters, end);
        let (result, hook) = match &decision {
            Decision::Complete => {
                if ctx.kept_records() {
                    self.records.completed(&job.id);
                }
                (ctx.take_result(), None)
            }
            Decision::Fail { error, causes } => {
                let hook = FailedHook {
                    handler: &handler,
                    payload: &payload,
                    ctx,
                    failure: JobFailure {
                        error: error.clone(),
                        causes: causes.clone(),
                    },
                    // Its own time limit: the job's timeout, or a minute.
                    limit: timeout.unwrap_or(Duration::from_secs(60)),
                    span,
                };
                (None, Some(hook))
            }
            Decision::Retry { .. } | Decision::Defer { .. } => (None, None),
        };
        let outcome = Outcome::Ran {
            envelope,
            ending,
            decision,
            result,
        };
        let settled = outcome::settle(job.id, job.token, outcome);
        self.tell(settled, meta, |s| log_decision(span, s), hook)
            .await
    }

    /// The job cannot run: it fails at once, without running anything of it.
    async fn cannot_run(&self, job: ReservedJob, meta: &JobMeta, error: String) -> Settlement {
        tracing::warn!(job_id = %job.id, queue = %job.queue, "{error}");
        let settled = outcome::settle(job.id, job.token, Outcome::CannotRun(error));
        self.tell(settled, meta, |_| {}, None).await
    }

    /// Tells the attempt's events in order and hands back its settlement. A timeout is told as
    /// soon as it happened, before the decision is logged; the failed hook runs right before
    /// `job.failed`, which promises that it has run.
    async fn tell(
        &self,
        settled: Settled,
        meta: &JobMeta,
        log: impl FnOnce(&Settlement),
        mut hook: Option<FailedHook<'_>>,
    ) -> Settlement {
        let events = &self.config.events;
        let mut log = Some(log);
        for notice in settled.notices() {
            if !matches!(notice, Notice::TimedOut(_))
                && let Some(log) = log.take()
            {
                log(&settled.settlement);
            }
            if notice == Notice::Failed
                && let Some(hook) = hook.take()
            {
                hook.run().await;
            }
            events.emit(|| notice.event(meta, settled.message()));
        }
        settled.settlement
    }

    /// Everything the job needs before its handler runs; `Err` says why it cannot run.
    fn prepare<'e>(
        &self,
        job: &ReservedJob,
        envelope: &'e Envelope,
    ) -> Result<Prepared<'e>, String> {
        let Some(handler) = self.registry.get(&envelope.job).cloned() else {
            return Err(format!(
                "unknown job type `{}`: no handler is registered under that name in this worker",
                envelope.job
            ));
        };
        if self.registry.is_privileged(&envelope.job) && !self.config.allow.contains(&envelope.job)
        {
            return Err(format!("start the worker with --allow {}", envelope.job));
        }
        if handler.encrypted() && !envelope.payload.is_encrypted() {
            // Only Spool's dispatch seals, so a plain payload was written past it: running it
            // would accept data that was never protected.
            return Err(format!(
                "job `{}` is encrypted but its payload is in plaintext: dispatch it through Spool (or `spool dispatch` of an app that registers it), which seals it",
                envelope.job
            ));
        }
        let payload = self
            .open(envelope)
            .map_err(|error| format!("payload decryption failed: {error}"))?;
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
        retry::check_at_pickup(&policy, counters, job.last_error.as_deref())?;
        Ok(Prepared {
            handler,
            payload,
            policy,
            counters,
            timeout: options.timeout.filter(|t| !t.is_zero()),
            ctx: self.context(job, envelope),
        })
    }

    /// What the handler is told about its attempt, with its link to the store.
    fn context(&self, job: &ReservedJob, envelope: &Envelope) -> JobContext {
        JobContext {
            id: envelope.id.clone(),
            job: envelope.job.clone(),
            queue: job.queue.clone(),
            attempt: job.attempts,
            recoveries: job.recoveries,
            deferrals: job.deferrals,
            batch_id: envelope.batch_id.clone(),
            callback: envelope.context.clone(),
            state: self.registry.state_map(),
            link: Some(Arc::new(StoreLink {
                store: self.store.clone(),
                worker_id: self.worker_id.clone(),
                token: job.token,
                result: Mutex::new(None),
                calls: Mutex::default(),
                kept: Default::default(),
                #[cfg(feature = "encryption")]
                sealer: match envelope.payload {
                    Payload::Encrypted(_) => self.keyring.clone(),
                    Payload::Plain(_) => None,
                },
            })),
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

/// A job ready to run: its handler, payload and effective options.
struct Prepared<'e> {
    handler: Arc<dyn ErasedJob>,
    payload: Cow<'e, str>,
    policy: Policy,
    counters: Counters,
    timeout: Option<Duration>,
    ctx: JobContext,
}

/// The `failed` hook of a job that failed for good, to run before `job.failed` is told.
struct FailedHook<'p> {
    handler: &'p Arc<dyn ErasedJob>,
    payload: &'p str,
    ctx: JobContext,
    failure: JobFailure,
    limit: Duration,
    span: &'p tracing::Span,
}

impl FailedHook<'_> {
    async fn run(self) {
        // The hook gets a freshly decoded job (S-JOB-5).
        let hook = self.handler.failed(self.payload, self.ctx, self.failure);
        if tokio::time::timeout(self.limit, hook.instrument(self.span.clone()))
            .await
            .is_err()
        {
            self.span
                .in_scope(|| tracing::warn!("the failed() hook timed out"));
        }
    }
}

/// Logs the decision on the job's span.
fn log_decision(span: &tracing::Span, settlement: &Settlement) {
    span.in_scope(|| match settlement {
        // One line per processed job at info, as Laravel prints (the span carries the queue,
        // job, id, attempt and elapsed time).
        Settlement::Complete { .. } => tracing::info!("processed"),
        Settlement::Release {
            delay,
            kind: ReleaseKind::Deferred,
            error,
            ..
        } => {
            let reason = error.as_deref().unwrap_or_default();
            tracing::info!(defer_ms = delay.as_millis() as u64, "deferred: {reason}")
        }
        Settlement::Release { delay, error, .. } => {
            let error = error.as_deref().unwrap_or_default();
            tracing::info!(retry_in_ms = delay.as_millis() as u64, "{error}")
        }
        Settlement::Fail { error, .. } => tracing::warn!("failed: {error}"),
    });
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
