//! The `Job` trait apps implement, the context a handler sees, and the error that is its
//! retry decision.

use crate::store::Held;
use std::{
    fmt,
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use serde::{Serialize, de::DeserializeOwned};

use crate::{
    envelope::{CallbackContext, DEFAULT_QUEUE},
    middleware::Middleware,
    options::JobOptions,
    store::{Progress, Store, StoreError},
};

/// A background job: a serde type with an async handler.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use spool::{Job, JobContext, JobResult};
///
/// #[derive(Serialize, Deserialize)]
/// struct SendEmail { to: String }
///
/// impl Job for SendEmail {
///     const NAME: &'static str = "send_email";
///     async fn handle(self, ctx: JobContext) -> JobResult {
///         println!("attempt {} of job {}: mailing {}", ctx.attempt(), ctx.id(), self.to);
///         Ok(())
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a Spool job",
    note = "implement `spool::Job` for it: a `NAME` and an async `handle`; see the `Job` docs"
)]
pub trait Job: Serialize + DeserializeOwned + Send + 'static {
    /// The name the job is registered and stored under. Keep it stable across deploys.
    const NAME: &'static str;

    /// Whether this job's payload is encrypted in the store (S-SEC-1). Default `false`.
    ///
    /// When `true`, dispatching seals the payload with the current key (`SPOOL_KEY`, or the
    /// handle's [`Keyring`](crate::encryption::Keyring)) and refuses to dispatch if there is
    /// none; the worker opens it with its keys, and fails the job at once, without retries, if
    /// it cannot. Needs the `encryption` feature (on by default). See `docs/encryption.md`.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(Serialize, Deserialize)]
    /// struct ChargeCard { card_token: String, cents: u64 }
    ///
    /// impl spool::Job for ChargeCard {
    ///     const NAME: &'static str = "charge_card";
    ///     const ENCRYPTED: bool = true;
    ///     async fn handle(self, _ctx: spool::JobContext) -> spool::JobResult { Ok(()) }
    /// }
    /// ```
    const ENCRYPTED: bool = false;

    /// The queue this job goes to unless the dispatch names another.
    fn queue(&self) -> &str {
        DEFAULT_QUEUE
    }

    /// Options of this job type; a dispatch may override each one.
    fn options(&self) -> JobOptions {
        JobOptions::default()
    }

    /// Middleware that runs around [`handle`](Job::handle), in order: rate limits,
    /// concurrency limits, overlap locks, exception throttling, skips (see
    /// [`crate::middleware`]). Built from the job itself, so keys can name its data.
    fn middleware(&self) -> Vec<Box<dyn Middleware>> {
        Vec::new()
    }

    /// Runs the job. Return `Err` to retry per the options, or use [`JobError::fail`],
    /// [`JobError::release`] and [`JobError::defer`] to decide otherwise.
    fn handle(self, ctx: JobContext) -> impl Future<Output = JobResult> + Send;

    /// Called once when the job has failed for good, on a freshly decoded copy of the job
    /// (state changed inside `handle` is not seen here).
    fn failed(self, ctx: JobContext, error: &JobFailure) -> impl Future<Output = ()> + Send {
        let _ = (ctx, error);
        async {}
    }
}

/// What a handler returns.
pub type JobResult = Result<(), JobError>;

/// Facts about the running attempt.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub(crate) id: String,
    pub(crate) job: String,
    pub(crate) queue: String,
    pub(crate) attempt: u32,
    pub(crate) recoveries: u32,
    pub(crate) deferrals: u32,
    pub(crate) batch_id: Option<String>,
    /// What a callback or catch job is called about (its envelope's `context`).
    pub(crate) callback: Option<CallbackContext>,
    /// App state registered with the registry ([`crate::Registry::with_state`]).
    pub(crate) state: Arc<crate::state::StateMap>,
    /// The store and reservation, when a worker runs the job (not inline).
    pub(crate) link: Option<Arc<StoreLink>>,
}

/// What a handler running under a worker can reach: the store, fenced on its reservation.
pub(crate) struct StoreLink {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) worker_id: String,
    pub(crate) token: i64,
    /// The result the handler set, written with its completion.
    pub(crate) result: Mutex<Option<String>>,
    /// Model calls of this attempt by request hash, so the n-th identical call replays the
    /// n-th recording.
    #[cfg_attr(not(feature = "llm"), allow(dead_code))]
    pub(crate) calls: Mutex<std::collections::HashMap<String, u32>>,
    /// Whether the attempt read or wrote kept records (step outputs, recorded model answers):
    /// the worker deletes them once the job's completion is written.
    pub(crate) kept: AtomicBool,
    /// For an encrypted job: the keys its kept step outputs and recorded model answers are
    /// sealed with, like its payload.
    #[cfg(feature = "encryption")]
    pub(crate) sealer: Option<crate::encryption::Keyring>,
}

/// Where a job's step outputs are kept: `step:<job id>:<step name>`.
const STEP_PREFIX: &str = "step:";

/// Where a job's recorded model answers are kept: `llm:call:<job id>:<hash>:<n>`.
#[cfg_attr(not(feature = "llm"), allow(dead_code))]
pub(crate) const RECORDING_PREFIX: &str = "llm:call:";

/// The key prefixes of everything job `id` keeps in the store while it runs.
pub(crate) fn kept_prefixes(id: &str) -> [String; 2] {
    [
        format!("{STEP_PREFIX}{id}:"),
        format!("{RECORDING_PREFIX}{id}:"),
    ]
}

/// The prefix of a kept value sealed for an encrypted job.
#[cfg(feature = "encryption")]
const SEALED: &str = "sealed:";

impl fmt::Debug for StoreLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreLink")
            .field("worker_id", &self.worker_id)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl JobContext {
    /// The batch the job belongs to, if any.
    pub fn batch_id(&self) -> Option<&str> {
        self.batch_id.as_deref()
    }

    /// For a batch callback or a chain's catch job: the batch, the job that failed and its
    /// error (the envelope's `context`). `None` for other jobs.
    pub fn callback(&self) -> Option<&CallbackContext> {
        self.callback.as_ref()
    }

    /// The store the job came from (`None` when run inline by `dispatch_sync`). Middleware
    /// uses it for limits shared by every worker.
    pub fn store(&self) -> Option<&Arc<dyn Store>> {
        self.link.as_ref().map(|link| &link.store)
    }

    /// Reports progress (0-100) and what the job is doing, visible in `spool job ID` and the
    /// batch views. Written only when called, so jobs that don't report cost nothing. A no-op
    /// when run inline.
    pub async fn progress(
        &self,
        percent: u8,
        message: impl Into<Option<String>>,
    ) -> Result<(), StoreError> {
        let Some(link) = &self.link else {
            return Ok(());
        };
        let progress = Progress {
            percent: percent.min(100),
            message: message.into(),
        };
        link.store
            .set_progress(Held::new(&link.worker_id, &self.id, link.token), &progress)
            .await?;
        Ok(())
    }

    /// Keeps a small result (as JSON) with the job's completion, readable with `spool job ID`
    /// for the store's result retention time. The last value set before the handler returns
    /// wins; nothing is kept if the attempt does not complete.
    pub fn set_result(&self, value: &impl Serialize) -> Result<(), serde_json::Error> {
        let json = serde_json::to_string(value)?;
        if let Some(link) = &self.link {
            *link.result.lock().unwrap_or_else(|p| p.into_inner()) = Some(json);
        }
        Ok(())
    }

    /// Adds jobs to this job's batch (S-BATCH-6): the batch's total and pending grow.
    pub async fn add_to_batch<J: Job>(
        &self,
        jobs: impl IntoIterator<Item = J>,
    ) -> Result<Vec<crate::DispatchOutcome>, crate::DispatchError> {
        let (Some(link), Some(batch_id)) = (&self.link, &self.batch_id) else {
            return Err(crate::DispatchError::InvalidOption(
                "add_to_batch needs a job that runs in a batch under a worker".into(),
            ));
        };
        crate::Spool::new(link.store.clone())
            .add_to_batch(batch_id, jobs)
            .await
    }

    /// Runs a step of a pipeline once: its output (JSON) is kept with the job, so when the job
    /// is retried — after an error, a timeout or a killed worker — a finished step returns
    /// its kept output instead of running again, and the job resumes after its last finished
    /// step. Outputs are kept for 7 days and forgotten when the job completes. Run inline
    /// (no store), the step just runs.
    ///
    /// ```no_run
    /// # async fn demo(ctx: spool::JobContext) -> spool::JobResult {
    /// let outline: String = ctx.step("analyse", || async { Ok("an outline".to_string()) }).await?;
    /// let draft: String = ctx.step("generate", || async { Ok(format!("{outline}...")) }).await?;
    /// # Ok(()) }
    /// ```
    pub async fn step<T, F, Fut>(&self, name: &str, run: F) -> Result<T, JobError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, JobError>>,
    {
        let Some(store) = self.store() else {
            return run().await;
        };
        let key = format!("{STEP_PREFIX}{}:{name}", self.id);
        self.note_kept();
        let kept = store
            .kv_get(&key)
            .await
            .map_err(|e| JobError::retry(format!("reading step `{name}`: {e}")))?;
        if let Some(kept) = kept
            && let Some(plain) = self.open_kept(&kept.value)
            && let Ok(output) = serde_json::from_str(&plain)
        {
            return Ok(output);
        }
        let output = run().await?;
        let text = serde_json::to_string(&output)
            .map_err(|e| JobError::fail(format!("step `{name}`'s output is not JSON: {e}")))?;
        store
            .kv_put(
                &key,
                &self.seal_kept(&text),
                crate::store::KvExpect::Any,
                Some(Duration::from_secs(7 * 24 * 3600)),
            )
            .await
            .map_err(|e| JobError::retry(format!("keeping step `{name}`'s output: {e}")))?;
        Ok(output)
    }

    /// Notes that the attempt keeps records in the store (see [`StoreLink::kept`]).
    pub(crate) fn note_kept(&self) {
        if let Some(link) = &self.link {
            link.kept.store(true, Ordering::Relaxed);
        }
    }

    /// Whether the attempt kept records in the store (see [`StoreLink::kept`]).
    pub(crate) fn kept_records(&self) -> bool {
        self.link
            .as_ref()
            .is_some_and(|link| link.kept.load(Ordering::Relaxed))
    }

    /// Whether what this job keeps is sealed (its payload is encrypted).
    #[cfg_attr(not(feature = "llm"), allow(dead_code))]
    pub(crate) fn seals(&self) -> bool {
        #[cfg(feature = "encryption")]
        return self.link.as_ref().is_some_and(|l| l.sealer.is_some());
        #[cfg(not(feature = "encryption"))]
        false
    }

    /// A value this job keeps in the store, sealed if the job is encrypted.
    pub(crate) fn seal_kept(&self, plain: &str) -> String {
        #[cfg(feature = "encryption")]
        if let Some(keyring) = self.link.as_ref().and_then(|l| l.sealer.as_ref()) {
            let sealed = crate::encryption::seal(keyring, &self.job, &self.id, plain.as_bytes());
            return format!("{SEALED}{sealed}");
        }
        plain.to_string()
    }

    /// A kept value as plain text: opened if sealed (`None` if it cannot be opened, so the
    /// step runs or the call is made again rather than trusting it).
    pub(crate) fn open_kept(&self, stored: &str) -> Option<String> {
        #[cfg(feature = "encryption")]
        if let Some(sealed) = stored.strip_prefix(SEALED) {
            let keyring = self.link.as_ref().and_then(|l| l.sealer.as_ref());
            return crate::encryption::open(keyring, &self.job, &self.id, sealed).ok();
        }
        Some(stored.to_string())
    }

    /// The result set with [`set_result`](Self::set_result), taken by the worker.
    pub(crate) fn take_result(&self) -> Option<String> {
        self.link
            .as_ref()
            .and_then(|link| link.result.lock().unwrap_or_else(|p| p.into_inner()).take())
    }

    /// App state of type `T`, registered once with [`crate::Registry::with_state`] (a
    /// database pool, an HTTP client, config). Fails with [`crate::MissingState`], which `?`
    /// turns into a retryable job error, when nothing of that type was registered. Jobs run
    /// with `Spool::dispatch_sync` see no state.
    pub fn state<T: Send + Sync + 'static>(&self) -> Result<&T, crate::MissingState> {
        self.state.get::<T>()
    }

    /// The job's id.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// The job's registered name.
    pub fn job(&self) -> &str {
        &self.job
    }
    /// The queue it was taken from.
    pub fn queue(&self) -> &str {
        &self.queue
    }
    /// This attempt's number, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
    /// How often a worker died while running this job.
    pub fn recoveries(&self) -> u32 {
        self.recoveries
    }
    /// How often the job was deferred (rate limits, Retry-After) without using an attempt.
    pub fn deferrals(&self) -> u32 {
        self.deferrals
    }

    pub(crate) fn inline(id: &str, job: &str, queue: &str) -> Self {
        JobContext {
            id: id.to_string(),
            job: job.to_string(),
            queue: queue.to_string(),
            attempt: 1,
            recoveries: 0,
            deferrals: 0,
            batch_id: None,
            callback: None,
            state: Arc::default(),
            link: None,
        }
    }
}

/// A handler's error, which is also its retry decision.
///
/// Any `std::error::Error` converts into a retryable `JobError`, so `?` just works.
#[derive(Debug)]
pub struct JobError {
    pub(crate) kind: JobErrorKind,
    pub(crate) message: String,
    pub(crate) causes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobErrorKind {
    /// Retry per the job's tries and backoff.
    Retry,
    /// Fail now, whatever tries remain.
    Fail,
    /// Put back after a delay; uses the attempt.
    Release(Duration),
    /// Put back after a delay without using an attempt (rate limit, Retry-After).
    Defer(Duration),
}

impl JobError {
    /// A retryable error with a message.
    pub fn retry(message: impl fmt::Display) -> Self {
        Self::new(JobErrorKind::Retry, message)
    }

    /// Fail the job now, whatever tries remain.
    pub fn fail(message: impl fmt::Display) -> Self {
        Self::new(JobErrorKind::Fail, message)
    }

    /// Put the job back after `delay`; this attempt counts (Laravel's `release`).
    pub fn release(delay: Duration) -> Self {
        Self::new(
            JobErrorKind::Release(delay),
            format!("released for {delay:?}"),
        )
    }

    /// Defer the job by `delay` without using an attempt, e.g. on HTTP 429 with Retry-After.
    /// `reason` is what the failure record names if deferrals run out.
    pub fn defer(delay: Duration, reason: impl fmt::Display) -> Self {
        Self::new(JobErrorKind::Defer(delay), reason)
    }

    /// The error's message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Messages of the errors that caused this one, outermost first.
    pub fn causes(&self) -> &[String] {
        &self.causes
    }

    /// Adds cause messages (e.g. captured command output) to the record.
    pub fn with_causes(mut self, causes: impl IntoIterator<Item = String>) -> Self {
        self.causes.extend(causes);
        self
    }

    /// The same error with another message.
    pub fn with_message(mut self, message: impl fmt::Display) -> Self {
        self.message = message.to_string();
        self
    }

    /// The same error as a release after `delay` (the attempt counts, its message is kept).
    pub(crate) fn into_release(mut self, delay: Duration) -> Self {
        self.kind = JobErrorKind::Release(delay);
        self
    }

    fn new(kind: JobErrorKind, message: impl fmt::Display) -> Self {
        JobError {
            kind,
            message: message.to_string(),
            causes: Vec::new(),
        }
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for JobError {
    fn from(err: E) -> Self {
        JobError {
            kind: JobErrorKind::Retry,
            message: err.to_string(),
            causes: cause_chain(&err),
        }
    }
}

/// The messages of an error's `source()` chain, outermost first.
pub fn cause_chain(err: &dyn std::error::Error) -> Vec<String> {
    let mut causes = Vec::new();
    let mut next = err.source();
    while let Some(e) = next {
        causes.push(e.to_string());
        next = e.source();
    }
    causes
}

/// Why a job failed for good, as recorded in the failed store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFailure {
    /// The error message.
    pub error: String,
    /// Messages of its causes, outermost first.
    pub causes: Vec<String>,
}
