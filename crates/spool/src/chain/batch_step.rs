//! A batch as one step of a chain (S-CHAIN-5): when the chain reaches it, the batch is
//! created with the rest of the chain hung on its callbacks.
//!
//! Without `allow_failures` the rest runs from the batch's `then` (every job succeeded) and the
//! chain's catch job from its `catch` (the first failure stops the chain); with
//! `allow_failures` the rest runs from its `finally`, once every job has run.

use serde::{Deserialize, Serialize};

use crate::{
    dispatch::Spool,
    envelope::Envelope,
    job::{Job, JobContext, JobError, JobResult},
};

/// The internal job that creates a chain's batch step. Every worker knows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BatchStep {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) allow_failures: bool,
    pub(crate) jobs: Vec<Envelope>,
    /// The rest of the chain: its next link, carrying the links after it.
    pub(crate) next: Option<Envelope>,
    /// The chain's catch job.
    pub(crate) catch: Option<Envelope>,
}

impl Job for BatchStep {
    const NAME: &'static str = "spool.batch_step";

    async fn handle(self, ctx: JobContext) -> JobResult {
        let store = ctx
            .store()
            .ok_or_else(|| JobError::fail("a chain's batch step runs only under a worker"))?
            .clone();
        // At-least-once: a re-run after a crash finds the batch it created and stops there.
        if store
            .batch(&self.id)
            .await
            .map_err(JobError::retry)?
            .is_some()
        {
            return Ok(());
        }
        let spool = Spool::new(store);
        let mut batch = spool.batch(self.name).id(self.id).on_queue(ctx.queue());
        if self.allow_failures {
            batch = batch.allow_failures();
        }
        for job in self.jobs {
            batch = batch.add_envelope(job);
        }
        if let Some(next) = self.next {
            let slot = if self.allow_failures {
                "finally"
            } else {
                "then"
            };
            batch = batch
                .callback_envelope(slot, next)
                .map_err(JobError::fail)?;
        }
        if let Some(catch) = self.catch.filter(|_| !self.allow_failures) {
            batch = batch
                .callback_envelope("catch", catch)
                .map_err(JobError::fail)?;
        }
        batch.dispatch().await.map_err(JobError::retry)?;
        Ok(())
    }
}
