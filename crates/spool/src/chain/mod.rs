//! Chains: jobs that run one after another (S-CHAIN-1..3).
//!
//! The head is pushed now and carries the rest of the chain in its envelope; each link, when
//! it completes, has the next one pushed in the same store transaction as its completion, so
//! a crash can neither skip nor repeat a step. A link that fails for good stops the chain and
//! pushes the chain's catch job (once), with the failed link's id and error in its envelope's
//! `context`.

use std::time::Duration;

mod batch_step;

pub(crate) use batch_step::BatchStep;

use crate::{
    batch::Batch,
    dispatch::{DispatchError, DispatchOutcome, Spool},
    envelope::{ChainLink, ChainRest, Envelope},
    job::Job,
};

/// A chain being built: see [`Spool::chain`].
///
/// ```no_run
/// # use serde::{Deserialize, Serialize};
/// # use spool::{Job, JobContext, JobResult, Spool};
/// # macro_rules! job { ($t:ident, $n:literal) => {
/// #   #[derive(Serialize, Deserialize)] struct $t { doc: u64 }
/// #   impl Job for $t { const NAME: &'static str = $n;
/// #     async fn handle(self, _: JobContext) -> JobResult { Ok(()) } } } }
/// # job!(Analyse, "analyse"); job!(Estimate, "estimate"); job!(Generate, "generate"); job!(Notify, "notify");
/// # async fn demo(spool: Spool) -> Result<(), spool::DispatchError> {
/// spool
///     .chain()
///     .then(Analyse { doc: 7 })?
///     .then(Estimate { doc: 7 })?
///     .then(Generate { doc: 7 })?
///     .catch(Notify { doc: 7 })?
///     .on_queue("documents")
///     .dispatch()
///     .await?;
/// # Ok(()) }
/// ```
#[must_use = "a chain does nothing until dispatched"]
#[derive(Debug)]
pub struct Chain<'a> {
    spool: &'a Spool,
    links: Vec<Link>,
    catch: Option<Envelope>,
    queue: Option<String>,
    delay: Duration,
    tags: Vec<String>,
}

/// One step of a chain.
#[derive(Debug)]
enum Link {
    Job(Box<Envelope>),
    Batch {
        name: String,
        allow_failures: bool,
        jobs: Vec<Envelope>,
    },
}

impl Spool {
    /// Starts a chain: add links with [`Chain::then`], then [`Chain::dispatch`].
    pub fn chain(&self) -> Chain<'_> {
        Chain {
            spool: self,
            links: Vec::new(),
            catch: None,
            queue: None,
            delay: Duration::ZERO,
            tags: Vec::new(),
        }
    }
}

impl Chain<'_> {
    /// Appends a link, with the job type's queue and options.
    pub fn then<J: Job>(mut self, job: J) -> Result<Self, DispatchError> {
        let envelope = self.spool.default_envelope(&job)?;
        self.links.push(Link::Job(Box::new(envelope)));
        Ok(self)
    }

    /// Appends a batch as one step (S-CHAIN-5): the chain goes on once the batch is done —
    /// when every job succeeded, or with [`Batch::allow_failures`] when every job has run. Without
    /// `allow_failures` a failure stops the chain and runs its catch job. The batch's own
    /// `then`/`catch`/`finally` are the chain's to use, so a batch step may not set them.
    pub fn then_batch(mut self, batch: Batch<'_>) -> Result<Self, DispatchError> {
        let (name, allow_failures, jobs) = batch.into_step()?;
        self.links.push(Link::Batch {
            name,
            allow_failures,
            jobs,
        });
        Ok(self)
    }

    /// The job pushed once if any link fails for good.
    pub fn catch<J: Job>(mut self, job: J) -> Result<Self, DispatchError> {
        self.catch = Some(self.spool.default_envelope(&job)?);
        Ok(self)
    }

    /// Runs every link (and the catch job) on this queue.
    pub fn on_queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// Tags every link and the catch job (see
    /// [`PendingDispatch::tags`](crate::PendingDispatch::tags)); a job's own tags are kept.
    pub fn tags<I, S>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tags.extend(tags.into_iter().map(Into::into));
        self
    }

    /// Delays every link: the first after dispatch, each later one after its predecessor
    /// completes.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// The head envelope, carrying the rest of the chain (for a batch that holds this chain).
    pub(crate) fn into_head(self) -> Result<Envelope, DispatchError> {
        if self.links.iter().any(|l| matches!(l, Link::Batch { .. })) {
            return Err(DispatchError::InvalidOption(
                "a chain inside a batch cannot hold a batch step".into(),
            ));
        }
        self.assemble(self.links.iter(), self.catch.clone())
    }

    /// Pushes the head; the rest follow as links complete. Returns the head's outcome.
    pub async fn dispatch(self) -> Result<DispatchOutcome, DispatchError> {
        let head = self.assemble(self.links.iter(), self.catch.clone())?;
        let delay = self.delay;
        let mut outcomes = self.spool.dispatch_envelopes(vec![(head, delay)]).await?;
        outcomes
            .pop()
            .ok_or_else(|| DispatchError::InvalidOption("the store returned no outcome".into()))
    }

    /// The head of the chain made of `links`, carrying the rest. A batch step ends the chain
    /// it is in: the links after it travel inside it, as the head of a chain of their own that
    /// its batch pushes when done.
    fn assemble<'l>(
        &self,
        mut links: impl Iterator<Item = &'l Link>,
        catch: Option<Envelope>,
    ) -> Result<Envelope, DispatchError> {
        let catch = catch.map(|c| self.with_queue(c));
        let mut envelopes = Vec::new();
        while let Some(link) = links.next() {
            match link {
                Link::Job(envelope) => envelopes.push(self.with_queue((**envelope).clone())),
                Link::Batch {
                    name,
                    allow_failures,
                    jobs,
                } => {
                    let rest: Vec<&Link> = links.by_ref().collect();
                    let next = if rest.is_empty() {
                        None
                    } else {
                        Some(self.assemble(rest.into_iter(), catch.clone())?)
                    };
                    let step = BatchStep {
                        id: crate::new_id(),
                        name: name.clone(),
                        allow_failures: *allow_failures,
                        jobs: jobs.iter().cloned().map(|j| self.with_queue(j)).collect(),
                        next,
                        catch: catch.clone(),
                    };
                    // The step's jobs travel in its payload: check them now, like the head.
                    for job in step.jobs.iter().chain(&step.next).chain(&step.catch) {
                        crate::limits::check_envelope(job)?;
                    }
                    let queue = self
                        .queue
                        .clone()
                        .unwrap_or_else(|| crate::DEFAULT_QUEUE.into());
                    envelopes.push(self.spool.envelope(
                        &step,
                        queue,
                        step.options(),
                        None,
                        None,
                    )?);
                }
            }
        }
        let mut envelopes = envelopes.into_iter();
        let Some(mut head) = envelopes.next() else {
            return Err(DispatchError::InvalidOption(
                "a chain needs at least one job".into(),
            ));
        };
        let rest: Vec<ChainLink> = envelopes
            .map(|envelope| ChainLink {
                envelope,
                delay: self.delay,
            })
            .collect();
        let catch = catch.map(Box::new);
        if !rest.is_empty() || catch.is_some() {
            head.chain = Some(Box::new(ChainRest { links: rest, catch }));
        }
        Ok(head)
    }

    /// A link or catch job with the chain's queue and tags.
    fn with_queue(&self, mut envelope: Envelope) -> Envelope {
        if let Some(queue) = &self.queue {
            envelope.queue = queue.clone();
        }
        if !self.tags.is_empty() {
            envelope.tags.extend(self.tags.iter().cloned());
            envelope.tags = crate::store::distinct_tags(&envelope.tags);
        }
        envelope
    }
}
