//! Chains: jobs that run one after another (S-CHAIN-1..3).
//!
//! The head is pushed now and carries the rest of the chain in its envelope; each link, when
//! it completes, has the next one pushed in the same store transaction as its completion, so
//! a crash can neither skip nor repeat a step. A link that fails for good stops the chain and
//! pushes the chain's catch job (once), with `failed_job_id` and `error` added to its payload.

use std::time::Duration;

use crate::{
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
pub struct Chain<'a> {
    spool: &'a Spool,
    links: Vec<Envelope>,
    catch: Option<Envelope>,
    queue: Option<String>,
    delay: Duration,
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
        }
    }
}

impl Chain<'_> {
    /// Appends a link, with the job type's queue and options.
    pub fn then<J: Job>(mut self, job: J) -> Result<Self, DispatchError> {
        let envelope =
            self.spool
                .envelope(&job, job.queue().to_string(), job.options(), None, None)?;
        self.links.push(envelope);
        Ok(self)
    }

    /// The job pushed once if any link fails for good.
    pub fn catch<J: Job>(mut self, job: J) -> Result<Self, DispatchError> {
        let envelope =
            self.spool
                .envelope(&job, job.queue().to_string(), job.options(), None, None)?;
        self.catch = Some(envelope);
        Ok(self)
    }

    /// Runs every link (and the catch job) on this queue.
    pub fn on_queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// Delays every link: the first after dispatch, each later one after its predecessor
    /// completes.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Pushes the head; the rest follow as links complete. Returns the head's outcome.
    pub async fn dispatch(self) -> Result<DispatchOutcome, DispatchError> {
        let Chain {
            spool,
            links,
            catch,
            queue,
            delay,
        } = self;
        let with_queue = |mut envelope: Envelope| {
            if let Some(queue) = &queue {
                envelope.queue = queue.clone();
            }
            envelope
        };
        let mut links = links.into_iter().map(with_queue);
        let Some(mut head) = links.next() else {
            return Err(DispatchError::InvalidOption(
                "a chain needs at least one job".into(),
            ));
        };
        let rest: Vec<ChainLink> = links
            .map(|envelope| ChainLink { envelope, delay })
            .collect();
        let catch = catch.map(with_queue).map(Box::new);
        if !rest.is_empty() || catch.is_some() {
            head.chain = Some(Box::new(ChainRest { links: rest, catch }));
        }
        let mut outcomes = spool.dispatch_envelopes(vec![(head, delay)]).await?;
        outcomes
            .pop()
            .ok_or_else(|| DispatchError::InvalidOption("the store returned no outcome".into()))
    }
}
