//! Batches: many jobs dispatched as one unit, with counters, progress and callbacks
//! (S-BATCH-1..8).
//!
//! The batch record and its jobs are stored in one transaction. Each job's completion or
//! final failure updates the batch's counters in the same transaction as the settlement, and
//! pushes the callbacks that became due, each at most once: `catch` at the first failure,
//! `finally` when every job has run, `then` when every job has succeeded (after retries too).
//! Progress is `(total - pending) / total`, so it reaches 100 % once every job has run, failed
//! ones included. Callback jobs see the batch's id through [`JobContext::batch_id`].
//!
//! [`JobContext::batch_id`]: crate::JobContext::batch_id

use std::time::Duration;

use crate::{
    dispatch::{DispatchError, DispatchOutcome, DispatchStatus, Spool},
    envelope::{CallbackContext, Envelope},
    events::Event,
    job::Job,
    limits::progress_id,
    store::{BatchInfo, NewBatch, NewJob, PushOutcome},
};

/// A batch being built: see [`Spool::batch`].
///
/// ```no_run
/// # use serde::{Deserialize, Serialize};
/// # use spool::{Job, JobContext, JobResult, Spool};
/// # #[derive(Serialize, Deserialize)] struct Generate { doc: u64 }
/// # impl Job for Generate { const NAME: &'static str = "generate";
/// #   async fn handle(self, _: JobContext) -> JobResult { Ok(()) } }
/// # #[derive(Serialize, Deserialize)] struct Done {}
/// # impl Job for Done { const NAME: &'static str = "done";
/// #   async fn handle(self, _: JobContext) -> JobResult { Ok(()) } }
/// # async fn demo(spool: Spool) -> Result<(), spool::DispatchError> {
/// let batch = spool
///     .batch("monthly reports")
///     .jobs((1..=50).map(|doc| Generate { doc }))?
///     .allow_failures()
///     .finally(Done {})?
///     .dispatch()
///     .await?;
/// println!("batch {} queued", batch.id);
/// # Ok(()) }
/// ```
#[must_use = "a batch does nothing until dispatched"]
#[derive(Debug)]
pub struct Batch<'a> {
    spool: &'a Spool,
    batch: NewBatch,
    jobs: Vec<Envelope>,
    /// `then`, `catch`, `finally`: encoded at dispatch, so `on_queue` applies whatever the order.
    callbacks: [Option<Envelope>; 3],
    /// Pushed after each job finishes; travels in every job's envelope, with an id of its own
    /// per job. Kept unsealed (with whether its type is encrypted) until that id is known.
    progress: Option<(Envelope, bool)>,
    queue: Option<String>,
    tags: Vec<String>,
}

/// What dispatching a batch did.
#[derive(Debug, Clone)]
pub struct BatchDispatch {
    /// The batch's id, for `spool batches show ID`.
    pub id: String,
    /// One outcome per job, in order.
    pub jobs: Vec<DispatchOutcome>,
}

impl Spool {
    /// Starts a batch named `name`.
    pub fn batch(&self, name: impl Into<String>) -> Batch<'_> {
        Batch {
            spool: self,
            batch: NewBatch {
                id: crate::new_id(),
                name: name.into(),
                ..NewBatch::default()
            },
            jobs: Vec::new(),
            callbacks: [None, None, None],
            progress: None,
            queue: None,
            tags: Vec::new(),
        }
    }

    /// Adds jobs to an existing batch: its total and pending grow.
    pub async fn add_to_batch<J: Job>(
        &self,
        batch_id: &str,
        jobs: impl IntoIterator<Item = J>,
    ) -> Result<Vec<DispatchOutcome>, DispatchError> {
        let store = self.require_store("batches")?.clone();
        let mut requests = Vec::new();
        for job in jobs {
            let mut envelope = self.default_envelope(&job)?;
            envelope.batch_id = Some(batch_id.to_string());
            requests.push((envelope, Duration::ZERO));
        }
        let new_jobs = self.new_jobs(&requests)?;
        let pushed = store.add_to_batch(batch_id, &new_jobs).await?;
        Ok(outcomes(&new_jobs, pushed))
    }

    /// Cancels a batch: its jobs still queued are skipped (counted as done, not run).
    pub async fn cancel_batch(&self, batch_id: &str) -> Result<bool, DispatchError> {
        let cancelled = self
            .require_store("batches")?
            .cancel_batch(batch_id)
            .await?;
        if cancelled {
            self.events.emit(|| Event::BatchCancelled {
                id: batch_id.to_string(),
            });
        }
        Ok(cancelled)
    }

    /// A batch's counters and state.
    pub async fn batch_info(&self, batch_id: &str) -> Result<Option<BatchInfo>, DispatchError> {
        Ok(self.require_store("batches")?.batch(batch_id).await?)
    }
}

impl Batch<'_> {
    /// Adds a job, with its type's queue and options.
    pub fn job<J: Job>(mut self, job: J) -> Result<Self, DispatchError> {
        let envelope = self.spool.default_envelope(&job)?;
        self.jobs.push(envelope);
        Ok(self)
    }

    /// Adds many jobs of one type.
    pub fn jobs<J: Job>(
        mut self,
        jobs: impl IntoIterator<Item = J>,
    ) -> Result<Self, DispatchError> {
        for job in jobs {
            self = self.job(job)?;
        }
        Ok(self)
    }

    /// Adds a chain as one member of the batch: it counts once, when its last link completes
    /// or any link fails for good (every link knows the batch; each completed link hands its
    /// membership to the next one in the same transaction).
    pub fn chain(mut self, chain: crate::Chain<'_>) -> Result<Self, DispatchError> {
        self.jobs.push(chain.into_head()?);
        Ok(self)
    }

    /// Adds a job given as an envelope (the CLI's requests).
    pub fn add_envelope(mut self, envelope: Envelope) -> Self {
        self.jobs.push(envelope);
        self
    }

    /// Failures don't cancel the batch (its other jobs run); `then` still needs every job to
    /// succeed.
    pub fn allow_failures(mut self) -> Self {
        self.batch.allow_failures = true;
        self
    }

    /// Runs every job of the batch on this queue.
    pub fn on_queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// Tags every job of the batch (see [`PendingDispatch::tags`](crate::PendingDispatch::tags));
    /// a job's own tags are kept. The batch id is searchable without tagging.
    pub fn tags<I, S>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tags.extend(tags.into_iter().map(Into::into));
        self
    }

    /// The batch's id (fresh unless set with [`id`](Self::id)).
    pub fn batch_id(&self) -> &str {
        &self.batch.id
    }

    /// Uses this id instead of a fresh one.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.batch.id = id.into();
        self
    }

    /// Pushed after each job of the batch finishes (succeeds or fails for good), in the same
    /// transaction as that job's settlement; read the counters with
    /// [`Spool::batch_info`](crate::Spool::batch_info) from it.
    pub fn progress<J: Job>(mut self, job: J) -> Result<Self, DispatchError> {
        let envelope = self.spool.unsealed_envelope(
            &job,
            job.queue().to_string(),
            job.options(),
            None,
            None,
        )?;
        self.progress = Some((envelope, J::ENCRYPTED));
        Ok(self)
    }

    /// Pushed once every job has succeeded.
    pub fn then<J: Job>(self, job: J) -> Result<Self, DispatchError> {
        self.callback(0, &job)
    }

    /// Pushed once, at the first failure.
    pub fn catch<J: Job>(self, job: J) -> Result<Self, DispatchError> {
        self.callback(1, &job)
    }

    /// Pushed once every job has run, whatever the outcome.
    pub fn finally<J: Job>(self, job: J) -> Result<Self, DispatchError> {
        self.callback(2, &job)
    }

    /// Sets a callback from an envelope (the CLI's requests); `which` is `then`, `catch` or
    /// `finally`.
    pub fn callback_envelope(
        mut self,
        which: &str,
        envelope: Envelope,
    ) -> Result<Self, DispatchError> {
        let slot = match which {
            "then" => 0,
            "catch" => 1,
            "finally" => 2,
            other => {
                return Err(DispatchError::InvalidOption(format!(
                    "unknown batch callback `{other}`: use then, catch or finally"
                )));
            }
        };
        self.callbacks[slot] = Some(envelope);
        Ok(self)
    }

    /// The parts a chain's batch step keeps: name, `allow_failures` and jobs.
    pub(crate) fn into_step(self) -> Result<(String, bool, Vec<Envelope>), DispatchError> {
        if self.callbacks.iter().any(Option::is_some) || self.progress.is_some() {
            return Err(DispatchError::InvalidOption(
                "a batch inside a chain cannot have its own then/catch/finally: the chain uses them"
                    .into(),
            ));
        }
        if self.jobs.is_empty() {
            return Err(DispatchError::InvalidOption(
                "a batch needs at least one job".into(),
            ));
        }
        Ok((self.batch.name, self.batch.allow_failures, self.jobs))
    }

    /// Stores the batch and its jobs in one transaction.
    pub async fn dispatch(mut self) -> Result<BatchDispatch, DispatchError> {
        let store = self.spool.require_store("batches")?.clone();
        if self.jobs.is_empty() {
            return Err(DispatchError::InvalidOption(
                "a batch needs at least one job".into(),
            ));
        }
        let progress = self
            .progress
            .take()
            .map(|(p, encrypted)| (self.callback_envelope_of(p), encrypted));
        let mut requests = Vec::with_capacity(self.jobs.len());
        for mut envelope in std::mem::take(&mut self.jobs) {
            if let Some(queue) = &self.queue {
                envelope.queue = queue.clone();
            }
            if !self.tags.is_empty() {
                envelope.tags.extend(self.tags.iter().cloned());
                envelope.tags = crate::store::distinct_tags(&envelope.tags);
            }
            self.join(&mut envelope, progress.as_ref())?;
            requests.push((envelope, Duration::ZERO));
        }
        let jobs = self.spool.new_jobs(&requests)?;
        let [then, catch, finally] = self
            .callbacks
            .clone()
            .map(|c| c.map(|e| self.encode(e)).transpose());
        self.batch.then = then?;
        self.batch.catch = catch?;
        self.batch.finally = finally?;
        let pushed = store.create_batch(&self.batch, &jobs).await?;
        self.spool.events.emit(|| Event::BatchDispatched {
            id: self.batch.id.clone(),
            name: self.batch.name.clone(),
            jobs: pushed.iter().filter(|p| **p == PushOutcome::Queued).count(),
        });
        Ok(BatchDispatch {
            id: self.batch.id,
            jobs: outcomes(&jobs, pushed),
        })
    }

    fn callback<J: Job>(mut self, slot: usize, job: &J) -> Result<Self, DispatchError> {
        self.callbacks[slot] = Some(self.spool.default_envelope(job)?);
        Ok(self)
    }

    /// A callback's envelope: it knows its batch but is not counted in it; its `context`
    /// names the batch (its payload stays as given).
    fn callback_envelope_of(&self, mut envelope: Envelope) -> Envelope {
        envelope.batch_id = Some(self.batch.id.clone());
        envelope.batch_callback = true;
        envelope
            .context
            .get_or_insert_with(CallbackContext::default)
            .batch_id = Some(self.batch.id.clone());
        if let Some(queue) = &self.queue {
            envelope.queue = queue.clone();
        }
        envelope
    }

    /// Makes a job — and, for a chain, each of its later links (not its catch job) — a member
    /// of the batch, each with its own progress callback: its id names the job, and it is
    /// sealed only now that this id is final (the id is bound into the sealed data).
    fn join(
        &self,
        envelope: &mut Envelope,
        progress: Option<&(Envelope, bool)>,
    ) -> Result<(), DispatchError> {
        envelope.batch_id = Some(self.batch.id.clone());
        envelope.batch_progress = match progress {
            Some((template, encrypted)) => {
                let mut own = template.clone();
                own.id = progress_id(&template.id, &envelope.id);
                Some(Box::new(self.spool.seal_if(own, *encrypted)?))
            }
            None => None,
        };
        if let Some(rest) = envelope.chain.as_deref_mut() {
            for link in &mut rest.links {
                self.join(&mut link.envelope, progress)?;
            }
        }
        Ok(())
    }

    /// A callback job, encoded for the batch record.
    fn encode(&self, envelope: Envelope) -> Result<NewJob, DispatchError> {
        let envelope = self.callback_envelope_of(envelope);
        let mut jobs = self.spool.new_jobs(&[(envelope, Duration::ZERO)])?;
        Ok(jobs.pop().expect("one request, one job"))
    }
}

fn outcomes(jobs: &[NewJob], pushed: Vec<PushOutcome>) -> Vec<DispatchOutcome> {
    jobs.iter()
        .zip(pushed)
        .map(|(job, p)| DispatchOutcome {
            id: job.id.clone(),
            status: match p {
                PushOutcome::Queued => DispatchStatus::Queued,
                PushOutcome::AlreadyQueued => DispatchStatus::AlreadyQueued,
            },
        })
        .collect()
}
