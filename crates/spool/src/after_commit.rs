//! Transactional enqueue: jobs that exist only if the caller's transaction commits.
//!
//! On the SQL stores the strongest form pushes inside the app's own transaction
//! (`PostgresStore::push_in_transaction`, `SqliteStore::push_in_transaction`) with jobs made by
//! [`Spool::new_job`]. Everywhere else, and for apps whose transaction lives in another
//! database, [`AfterCommit`] collects dispatches and pushes them only once the app says its
//! transaction committed; dropped without [`AfterCommit::commit`] (the transaction rolled
//! back), it pushes nothing.

use std::time::Duration;

use crate::{
    dispatch::{DispatchError, DispatchOutcome, Spool},
    envelope::Envelope,
    job::Job,
    store::NewJob,
};

impl Spool {
    /// Encodes a job for [`crate::store::QueueStore::push`] or a store's `push_in_transaction`, with its
    /// type's queue and options (encrypted if its type asks for it).
    pub fn new_job<J: Job>(&self, job: &J, delay: Duration) -> Result<NewJob, DispatchError> {
        let envelope = self.default_envelope(job)?;
        let mut jobs = self.new_jobs(&[(envelope, delay)])?;
        Ok(jobs.pop().expect("one request, one job"))
    }

    /// A buffer of dispatches that reach the store only when [`AfterCommit::commit`] is
    /// called, after the caller's own transaction committed.
    ///
    /// ```no_run
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize)] struct SendReceipt { order: u64 }
    /// # impl spool::Job for SendReceipt { const NAME: &'static str = "send_receipt";
    /// #   async fn handle(self, _: spool::JobContext) -> spool::JobResult { Ok(()) } }
    /// # async fn demo(spool: spool::Spool) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut jobs = spool.after_commit();
    /// jobs.dispatch(SendReceipt { order: 42 })?;
    /// // ... the app's own transaction commits here ...
    /// jobs.commit().await?; // only now is the job queued
    /// # Ok(()) }
    /// ```
    pub fn after_commit(&self) -> AfterCommit<'_> {
        AfterCommit {
            spool: self,
            pending: Vec::new(),
        }
    }
}

/// Dispatches held back until the caller's transaction commits: see [`Spool::after_commit`].
#[must_use = "nothing is queued until commit() is called"]
#[derive(Debug)]
pub struct AfterCommit<'a> {
    spool: &'a Spool,
    pending: Vec<(Envelope, Duration)>,
}

impl AfterCommit<'_> {
    /// Holds a job (with its type's queue and options) for the commit.
    pub fn dispatch<J: Job>(&mut self, job: J) -> Result<(), DispatchError> {
        self.dispatch_later(job, Duration::ZERO)
    }

    /// Holds a job that becomes available `delay` after the commit.
    pub fn dispatch_later<J: Job>(&mut self, job: J, delay: Duration) -> Result<(), DispatchError> {
        let envelope = self.spool.default_envelope(&job)?;
        self.pending.push((envelope, delay));
        Ok(())
    }

    /// How many jobs are held.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether no job is held.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The transaction committed: pushes every held job in one round trip.
    pub async fn commit(mut self) -> Result<Vec<DispatchOutcome>, DispatchError> {
        let pending = std::mem::take(&mut self.pending);
        self.spool.dispatch_envelopes(pending).await
    }

    /// The transaction rolled back: drops every held job (the same as dropping the buffer).
    pub fn rollback(mut self) {
        self.pending.clear();
    }
}

impl Drop for AfterCommit<'_> {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            tracing::debug!(
                jobs = self.pending.len(),
                "after-commit jobs dropped without a commit"
            );
        }
    }
}
