//! A job on its way into a store, and the checks every entry point makes before storing it.

use std::time::Duration;

use super::{NewBatch, StoreError};
use crate::{
    envelope::{DEFAULT_MAX_PAYLOAD_BYTES, Envelope},
    limits::{self, InvalidJob},
    options::Unique,
};

/// A job to enqueue: its encoded envelope plus when it becomes available.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The job's id (from the envelope).
    pub id: String,
    /// The queue (from the envelope).
    pub queue: String,
    /// The job name (from the envelope), kept in a column for listings.
    pub job: String,
    /// The encoded envelope, stored as is.
    pub envelope: String,
    /// How long after the store's "now" the job becomes available.
    pub delay: Duration,
    /// Retry window; the store turns it into an absolute deadline with its own clock.
    pub retry_for: Option<Duration>,
    /// The batch it belongs to (from the envelope): its settlement updates the batch.
    pub batch_id: Option<String>,
    /// Its unique lock (from the envelope's options), taken atomically with the push.
    pub unique: Option<Unique>,
    /// The dispatcher's tags (from the envelope), without repeats: kept in a column (and an
    /// index of their own) so listings and the completed history can be searched by tag.
    pub tags: Vec<String>,
    /// The largest encoded envelope a store accepts for this job, in bytes: the dispatcher's
    /// limit ([`NewJob::new`] sets the default 256 KiB).
    pub max_payload: usize,
}

impl NewJob {
    /// Encodes an envelope for pushing, refusing it if it breaks a rule of [`crate::limits`]
    /// (names, lengths, the queue-name rule, the default 256 KiB size limit), for the jobs it
    /// carries for later (chain links, callbacks) as for itself.
    pub fn new(envelope: &Envelope, delay: Duration) -> Result<NewJob, InvalidJob> {
        NewJob::with_max_payload(envelope, delay, DEFAULT_MAX_PAYLOAD_BYTES)
    }

    /// [`NewJob::new`] with another size limit (what `Spool::with_max_payload` sets).
    pub fn with_max_payload(
        envelope: &Envelope,
        delay: Duration,
        max_payload: usize,
    ) -> Result<NewJob, InvalidJob> {
        limits::check_envelope(envelope)?;
        let mut job = NewJob::encoded(envelope, delay).map_err(|source| InvalidJob::Serialize {
            job: envelope.job.clone(),
            source,
        })?;
        job.max_payload = max_payload;
        job.check()?;
        Ok(job)
    }

    /// Encodes an envelope without checking it: for the follow-ups of a job whose envelope was
    /// checked at dispatch (its chain's next link, its callbacks).
    pub(crate) fn encoded(
        envelope: &Envelope,
        delay: Duration,
    ) -> Result<NewJob, serde_json::Error> {
        Ok(NewJob {
            id: envelope.id.clone(),
            queue: envelope.queue.clone(),
            job: envelope.job.clone(),
            envelope: envelope.encode()?,
            delay,
            retry_for: envelope.options.retry_for,
            batch_id: envelope
                .batch_id
                .clone()
                .filter(|_| !envelope.batch_callback),
            unique: envelope.options.unique.clone(),
            tags: distinct(&envelope.tags),
            max_payload: usize::MAX,
        })
    }

    /// Checks the job's names and its encoded size against [`max_payload`](Self::max_payload):
    /// what every store's `push` (and `push_in_transaction`, and batch writes) does first.
    pub fn check(&self) -> Result<(), InvalidJob> {
        limits::check_names(
            &self.id,
            &self.job,
            &self.queue,
            self.batch_id.as_deref(),
            self.unique.as_ref().map(|u| u.key.as_str()),
        )?;
        limits::check_tags(&self.job, &self.tags)?;
        limits::check_size(&self.job, &self.envelope, self.max_payload)
    }

    /// The tags as one column value: joined by commas (which no tag holds), `None` when there
    /// are none.
    pub fn tags_column(&self) -> Option<String> {
        tags_column(&self.tags)
    }
}

/// Tags as one stored text: joined by commas (which [`limits::check_tags`] keeps out of every
/// tag), `None` for none.
fn tags_column(tags: &[String]) -> Option<String> {
    (!tags.is_empty()).then(|| tags.join(","))
}

/// The tags [`tags_column`] stored; empty for none.
pub(crate) fn tags_of_column(column: Option<&str>) -> Vec<String> {
    match column {
        Some(text) if !text.is_empty() => text.split(',').map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

/// `tags` in order without repeats.
pub(crate) fn distinct(tags: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for tag in tags {
        if !out.contains(tag) {
            out.push(tag.clone());
        }
    }
    out
}

/// Checks every job of a push ([`NewJob::check`]); a store refuses the whole push if one fails.
pub(crate) fn check_jobs(jobs: &[NewJob]) -> Result<(), StoreError> {
    for job in jobs {
        job.check()
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
    }
    Ok(())
}

/// Checks a new batch: its id and callbacks, then its jobs ([`check_jobs`]).
pub(crate) fn check_batch(batch: &NewBatch, jobs: &[NewJob]) -> Result<(), StoreError> {
    limits::check_batch_id(&batch.id).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let callbacks: Vec<NewJob> = [&batch.then, &batch.catch, &batch.finally]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    check_jobs(&callbacks)?;
    check_jobs(jobs)
}
