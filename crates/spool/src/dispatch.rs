//! Dispatching: the [`Spool`] handle apps keep, and the [`PendingDispatch`] builder that sets
//! per-dispatch options before the job is pushed (`dispatch/pending.rs`).

use std::{sync::Arc, time::Duration};

#[cfg(feature = "encryption")]
use crate::encryption::{KeyError, KeySource, Keyring};
use crate::{
    envelope::{DEFAULT_MAX_PAYLOAD_BYTES, Envelope, Payload, TraceContext},
    events::{Event, Events, JobMeta},
    job::{Job, JobContext, JobResult},
    limits::InvalidJob,
    options::JobOptions,
    registry::Registry,
    store::{NewJob, PushOutcome, RetrySelector, Store, StoreError},
    testing::Recorder,
};

mod pending;

pub use pending::PendingDispatch;

/// A dispatch was refused. Nothing was enqueued.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// The job breaks a rule every job obeys (names, lengths, the queue-name rule, the
    /// payload size limit): see [`crate::limits`].
    #[error(transparent)]
    Invalid(#[from] InvalidJob),
    /// An option is out of range.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// The store refused or could not be reached.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The job type is encrypted ([`Job::ENCRYPTED`]) and no key is configured.
    #[error(
        "job `{job}` is encrypted but no key is configured: set SPOOL_KEY (generate one with `openssl rand -base64 32`) or give the handle a Keyring"
    )]
    NoKey {
        /// Job name.
        job: String,
    },
    /// The job type is encrypted but this build has no `encryption` feature.
    #[error("job `{job}` is encrypted but Spool was built without its `encryption` feature")]
    EncryptionNotCompiled {
        /// Job name.
        job: String,
    },
    /// `SPOOL_KEY` or `SPOOL_PREVIOUS_KEYS` holds a bad key.
    #[cfg(feature = "encryption")]
    #[error(transparent)]
    Key(#[from] KeyError),
    /// In inline mode, the job ran and failed.
    #[error("job `{job}` failed inline: {message}")]
    Inline {
        /// Job name.
        job: String,
        /// The handler's error.
        message: String,
    },
}

/// What happened to a dispatched job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchOutcome {
    /// The job's id.
    pub id: String,
    /// Queued, already queued, skipped (a false `when`), recorded (fake) or ran (inline).
    pub status: DispatchStatus,
}

/// See [`DispatchOutcome`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispatchStatus {
    /// Stored.
    Queued,
    /// A job with this id exists already; nothing was added.
    AlreadyQueued,
    /// `when(false)` / `unless(true)`: not dispatched.
    Skipped,
    /// Recorded by a fake [`Spool`].
    Recorded,
    /// Run at once by an inline [`Spool`].
    RanInline,
}

#[derive(Clone)]
enum Mode {
    Store(Arc<dyn Store>),
    Fake(Arc<Recorder>),
    Inline(Registry),
}

/// The handle an app dispatches jobs through. Cheap to clone.
///
/// ```no_run
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize)] struct Report { id: u64 }
/// # impl spool::Job for Report {
/// #     const NAME: &'static str = "report";
/// #     async fn handle(self, _: spool::JobContext) -> spool::JobResult { Ok(()) }
/// # }
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// let spool = spool::Spool::connect("sqlite://jobs.db").await?;
/// spool.dispatch(Report { id: 1 }).await?;
/// spool.dispatch(Report { id: 2 }).on_queue("reports").delay(Duration::from_secs(60)).tries(5).await?;
/// spool.dispatch(Report { id: 3 }).when(false).await?; // skipped
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Spool {
    mode: Mode,
    max_payload: usize,
    pub(crate) events: Events,
    #[cfg(feature = "encryption")]
    keys: KeySource,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match &self.mode {
            Mode::Store(s) => s.backend(),
            Mode::Fake(_) => "fake",
            Mode::Inline(_) => "inline",
        };
        f.debug_struct("Spool")
            .field("mode", &mode)
            .field("events", &self.events)
            .finish()
    }
}

impl Spool {
    /// Connects to (and migrates) the store a URL names.
    pub async fn connect(url: &str) -> Result<Spool, StoreError> {
        Ok(Spool::new(crate::store::connect(url).await?))
    }

    /// Dispatches to an open store.
    pub fn new(store: Arc<dyn Store>) -> Spool {
        Spool::with_mode(Mode::Store(store))
    }

    fn with_mode(mode: Mode) -> Spool {
        Spool {
            mode,
            max_payload: DEFAULT_MAX_PAYLOAD_BYTES,
            events: Events::default(),
            #[cfg(feature = "encryption")]
            keys: KeySource::default(),
        }
    }

    /// For app tests: records dispatches instead of storing them; inspect them through the
    /// returned [`Recorder`].
    pub fn fake() -> (Spool, Arc<Recorder>) {
        let recorder = Arc::new(Recorder::default());
        (Spool::with_mode(Mode::Fake(recorder.clone())), recorder)
    }

    /// For app tests: runs every dispatched job at once, in the caller's task, through
    /// `registry`; a job's error comes back as [`DispatchError::Inline`].
    pub fn inline(registry: Registry) -> Spool {
        Spool::with_mode(Mode::Inline(registry))
    }

    /// Sets the largest encoded envelope accepted (default 256 KiB).
    pub fn with_max_payload(mut self, bytes: usize) -> Spool {
        self.max_payload = bytes;
        self
    }

    /// Sends this handle's dispatch events ([`Event::JobQueueing`], [`Event::JobQueued`],
    /// [`Event::JobRetryRequested`]) to `events`.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let events = spool::events::Events::new();
    /// events.on(|e| println!("{}", e.name()));
    /// let spool = spool::Spool::connect("sqlite://jobs.db").await?.with_events(events);
    /// # Ok(()) }
    /// ```
    pub fn with_events(mut self, events: Events) -> Spool {
        self.events = events;
        self
    }

    /// Seals the payloads of encrypted job types with this keyring instead of the one in
    /// `SPOOL_KEY` / `SPOOL_PREVIOUS_KEYS`.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use spool::encryption::{Key, Keyring};
    /// let key = Key::from_base64(&std::env::var("MY_APP_SPOOL_KEY")?)?;
    /// let spool = spool::Spool::connect("sqlite://jobs.db").await?.with_keyring(Keyring::new(key));
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "encryption")]
    pub fn with_keyring(mut self, keyring: Keyring) -> Spool {
        self.keys = KeySource::set(keyring);
        self
    }

    /// Puts failed jobs back on their queues (what `spool retry` does), with fresh counters
    /// and the same ids, and emits [`Event::JobRetryRequested`] for each. Returns the ids
    /// retried; fake and inline handles have no failed jobs.
    pub async fn retry_failed(&self, selector: &RetrySelector) -> Result<Vec<String>, StoreError> {
        let Mode::Store(store) = &self.mode else {
            return Ok(Vec::new());
        };
        let retried = store.retry_failed(selector).await?;
        for id in &retried {
            self.events
                .emit(|| Event::JobRetryRequested { id: id.clone() });
        }
        Ok(retried)
    }

    /// The store behind this handle (`None` for fake and inline handles).
    pub fn store(&self) -> Option<Arc<dyn Store>> {
        match &self.mode {
            Mode::Store(store) => Some(store.clone()),
            _ => None,
        }
    }

    /// Starts a dispatch; set options on the builder, then `.await` it.
    pub fn dispatch<J: Job>(&self, job: J) -> PendingDispatch<'_, J> {
        PendingDispatch::new(self, job)
    }

    /// Dispatches many jobs of one type in one store round trip, with the type's options.
    pub async fn dispatch_many<J: Job>(
        &self,
        jobs: impl IntoIterator<Item = J>,
    ) -> Result<Vec<DispatchOutcome>, DispatchError> {
        let mut requests = Vec::new();
        for job in jobs {
            let envelope = self.default_envelope(&job)?;
            requests.push((envelope, Duration::ZERO));
        }
        self.dispatch_envelopes(requests).await
    }

    /// Runs a job now, in this task: no store, no retries; its error reaches the caller
    /// (S-DISP-3).
    pub async fn dispatch_sync<J: Job>(&self, job: J) -> JobResult {
        let id = crate::envelope::new_id();
        let queue = job.queue().to_string();
        job.handle(JobContext::inline(&id, J::NAME, &queue)).await
    }

    /// Dispatches ready-made envelopes (used by `spool dispatch --stdin`), all or nothing.
    pub async fn dispatch_envelopes(
        &self,
        requests: Vec<(Envelope, Duration)>,
    ) -> Result<Vec<DispatchOutcome>, DispatchError> {
        let jobs = self.new_jobs(&requests)?;
        let metas: Vec<JobMeta> = requests
            .iter()
            .map(|(e, _)| JobMeta::new(&e.id, &e.job, &e.queue, 0))
            .collect();
        for job in &metas {
            self.events.emit(|| Event::JobQueueing { job: job.clone() });
        }
        let statuses = self.push(requests, &jobs).await?;
        let mut out = Vec::with_capacity(jobs.len());
        for ((job, status), new) in metas.into_iter().zip(statuses).zip(&jobs) {
            let id = self.holder_of(new, status).await?;
            self.events.emit(|| Event::JobQueued { job, status });
            out.push(DispatchOutcome { id, status });
        }
        Ok(out)
    }

    /// The id to report for a pushed job: its own, or for a unique job refused because another
    /// job holds its lock, that job's (so `spool job ID` finds it). If the holder finished in
    /// between, the job's own id.
    async fn holder_of(&self, job: &NewJob, status: DispatchStatus) -> Result<String, StoreError> {
        if let (Mode::Store(store), DispatchStatus::AlreadyQueued, Some(unique)) =
            (&self.mode, status, &job.unique)
            && let Some(holder) = store.unique_holder(&job.queue, &unique.key).await?
        {
            return Ok(holder);
        }
        Ok(job.id.clone())
    }

    /// Checks and encodes envelopes for the store.
    pub(crate) fn new_jobs(
        &self,
        requests: &[(Envelope, Duration)],
    ) -> Result<Vec<NewJob>, DispatchError> {
        requests
            .iter()
            .map(|(envelope, delay)| {
                Ok(NewJob::with_max_payload(
                    envelope,
                    *delay,
                    self.max_payload,
                )?)
            })
            .collect()
    }

    /// The store behind a store-backed handle, or an error naming `what` needs one.
    pub(crate) fn require_store(&self, what: &str) -> Result<&Arc<dyn Store>, DispatchError> {
        match &self.mode {
            Mode::Store(store) => Ok(store),
            _ => Err(DispatchError::InvalidOption(format!(
                "{what} need a store: use Spool::connect or Spool::new"
            ))),
        }
    }

    /// Hands validated jobs to the store, the recorder or the inline runner.
    async fn push(
        &self,
        requests: Vec<(Envelope, Duration)>,
        jobs: &[NewJob],
    ) -> Result<Vec<DispatchStatus>, DispatchError> {
        match &self.mode {
            Mode::Store(store) => {
                let pushed = store.push(jobs).await?;
                Ok(pushed
                    .into_iter()
                    .map(|p| match p {
                        PushOutcome::Queued => DispatchStatus::Queued,
                        PushOutcome::AlreadyQueued => DispatchStatus::AlreadyQueued,
                    })
                    .collect())
            }
            Mode::Fake(recorder) => {
                let n = requests.len();
                for (envelope, delay) in requests {
                    recorder.record(envelope, delay);
                }
                Ok(vec![DispatchStatus::Recorded; n])
            }
            Mode::Inline(registry) => {
                let mut out = Vec::new();
                for (envelope, _) in requests {
                    run_inline(registry, &envelope).await?;
                    out.push(DispatchStatus::RanInline);
                }
                Ok(out)
            }
        }
    }

    /// An envelope for `job` with its type's own queue and options (no caller-chosen id, no
    /// trace): what batches, chains and bulk dispatch add.
    pub(crate) fn default_envelope<J: Job>(&self, job: &J) -> Result<Envelope, DispatchError> {
        self.envelope(job, job.queue().to_string(), job.options(), None, None)
    }

    /// An envelope for `job`, sealed if its type is encrypted.
    pub(crate) fn envelope<J: Job>(
        &self,
        job: &J,
        queue: String,
        options: JobOptions,
        id: Option<String>,
        trace: Option<TraceContext>,
    ) -> Result<Envelope, DispatchError> {
        let envelope = self.unsealed_envelope(job, queue, options, id, trace)?;
        // Sealed last, once the envelope is final: the id is bound into the sealed data.
        self.seal_if(envelope, J::ENCRYPTED)
    }

    /// [`Spool::envelope`] before sealing: for an envelope whose id is not final yet (a
    /// batch's progress callback, sealed per job once its id is known).
    pub(crate) fn unsealed_envelope<J: Job>(
        &self,
        job: &J,
        queue: String,
        options: JobOptions,
        id: Option<String>,
        trace: Option<TraceContext>,
    ) -> Result<Envelope, DispatchError> {
        if let Some(tries) = options.tries
            && tries > i32::MAX as u32
        {
            return Err(DispatchError::InvalidOption(format!(
                "tries {tries} is out of range"
            )));
        }
        let payload =
            serde_json::value::to_raw_value(job).map_err(|source| InvalidJob::Serialize {
                job: J::NAME.to_string(),
                source,
            })?;
        let mut envelope = Envelope::from_raw(J::NAME, &queue, payload);
        if let Some(id) = id {
            envelope.id = id;
        }
        envelope.options = options;
        // The caller's context, else the current span's (with the `otel` feature).
        envelope.trace = trace.or_else(crate::trace::current);
        Ok(envelope)
    }
}

impl Spool {
    /// Seals `envelope` when `encrypted` and this handle stores jobs.
    pub(crate) fn seal_if(
        &self,
        envelope: Envelope,
        encrypted: bool,
    ) -> Result<Envelope, DispatchError> {
        // Fake and inline handles store nothing, so there is nothing to protect (and app tests
        // need no key).
        if encrypted && matches!(self.mode, Mode::Store(_)) {
            self.seal_envelope(envelope)
        } else {
            Ok(envelope)
        }
    }

    /// Seals a plain envelope's payload with the `SPOOL_KEY` keys, as [`Spool::dispatch`] does
    /// for a job type with [`Job::ENCRYPTED`](crate::Job::ENCRYPTED); an already sealed one is
    /// left alone. Seal an envelope only once it is final: its id is bound into the sealed data.
    ///
    /// For envelopes built by hand (e.g. the `spool dispatch` command) whose job type the app
    /// registered as encrypted ([`Registry::is_encrypted`]), so no secret reaches the store in
    /// the clear. Fails if no key is set or the `encryption` feature is off.
    pub fn seal_envelope(&self, mut envelope: Envelope) -> Result<Envelope, DispatchError> {
        if let Payload::Plain(raw) = &envelope.payload {
            envelope.payload = self.seal(&envelope.job, &envelope.id, raw)?;
        }
        Ok(envelope)
    }

    fn seal(
        &self,
        job: &str,
        id: &str,
        payload: &serde_json::value::RawValue,
    ) -> Result<Payload, DispatchError> {
        #[cfg(feature = "encryption")]
        {
            let keyring = self.keys.get()?.ok_or_else(|| DispatchError::NoKey {
                job: job.to_string(),
            })?;
            let sealed = crate::encryption::seal(&keyring, job, id, payload.get().as_bytes());
            Ok(Payload::Encrypted(sealed))
        }
        #[cfg(not(feature = "encryption"))]
        {
            let _ = (id, payload);
            Err(DispatchError::EncryptionNotCompiled {
                job: job.to_string(),
            })
        }
    }
}

async fn run_inline(registry: &Registry, envelope: &Envelope) -> Result<(), DispatchError> {
    let handler = registry
        .get(&envelope.job)
        .ok_or_else(|| DispatchError::Inline {
            job: envelope.job.clone(),
            message: format!("unknown job type `{}`", envelope.job),
        })?;
    let Some(payload) = envelope.payload.plain() else {
        return Err(DispatchError::Inline {
            job: envelope.job.clone(),
            message: "an inline handle does not run encrypted envelopes".into(),
        });
    };
    let mut ctx = JobContext::inline(&envelope.id, &envelope.job, &envelope.queue);
    ctx.state = registry.state_map();
    handler
        .run(payload, ctx)
        .await
        .map_err(|e| DispatchError::Inline {
            job: envelope.job.clone(),
            message: e.message,
        })
}
