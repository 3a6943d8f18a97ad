//! The [`PendingDispatch`] builder: per-dispatch options, then `.await` to push.

use std::{
    future::{Future, IntoFuture},
    pin::Pin,
    time::Duration,
};

use super::{DispatchError, DispatchOutcome, DispatchStatus, Spool};
use crate::{
    envelope::TraceContext,
    job::Job,
    options::{Backoff, JobOptions},
};

/// A dispatch being built; `.await` it to push the job.
#[must_use = "a dispatch does nothing until awaited"]
pub struct PendingDispatch<'a, J: Job> {
    spool: &'a Spool,
    job: J,
    options: JobOptions,
    queue: Option<String>,
    delay: Duration,
    id: Option<String>,
    enabled: bool,
    trace: Option<TraceContext>,
    tags: Vec<String>,
}

impl<J: Job> std::fmt::Debug for PendingDispatch<'_, J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingDispatch")
            .field("job", &J::NAME)
            .field("queue", &self.queue)
            .field("delay", &self.delay)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl<'a, J: Job> PendingDispatch<'a, J> {
    /// A dispatch of `job` through `spool` with the job type's defaults.
    pub(super) fn new(spool: &'a Spool, job: J) -> Self {
        PendingDispatch {
            spool,
            job,
            options: JobOptions::default(),
            queue: None,
            delay: Duration::ZERO,
            id: None,
            enabled: true,
            trace: None,
            tags: Vec::new(),
        }
    }

    /// Applies one setting; each builder method below is a call to this.
    fn set(mut self, apply: impl FnOnce(&mut Self)) -> Self {
        apply(&mut self);
        self
    }

    /// Makes the job unique: while another job holds `unique.key`, this dispatch is
    /// reported as already queued and nothing is stored (S-UNIQ-1).
    pub fn unique(self, unique: crate::Unique) -> Self {
        self.set(|d| d.options.unique = Some(unique))
    }

    /// Sends the job to this queue.
    pub fn on_queue(self, queue: impl Into<String>) -> Self {
        self.set(|d| d.queue = Some(queue.into()))
    }
    /// Makes the job available only after `delay` (measured by the store's clock).
    pub fn delay(self, delay: Duration) -> Self {
        self.set(|d| d.delay = delay)
    }
    /// Maximum attempts; 0 = unlimited.
    pub fn tries(self, tries: u32) -> Self {
        self.set(|d| d.options.tries = Some(tries))
    }
    /// Delay before retries after errors.
    pub fn backoff(self, backoff: Backoff) -> Self {
        self.set(|d| d.options.backoff = Some(backoff))
    }
    /// Longest one attempt may run; zero disables the limit.
    pub fn timeout(self, timeout: Duration) -> Self {
        self.set(|d| d.options.timeout = Some(timeout))
    }
    /// Retry without an attempt limit for this long after dispatch.
    pub fn retry_for(self, window: Duration) -> Self {
        self.set(|d| d.options.retry_for = Some(window))
    }
    /// Fail after this many errors or timeouts, even if tries remain.
    pub fn max_exceptions(self, n: u32) -> Self {
        self.set(|d| d.options.max_exceptions = Some(n))
    }
    /// Fail at the first timeout.
    pub fn fail_on_timeout(self) -> Self {
        self.set(|d| d.options.fail_on_timeout = true)
    }
    /// Uses a caller-chosen id: dispatching the same id again is a no-op while the job exists
    /// (idempotent dispatch).
    pub fn id(self, id: impl Into<String>) -> Self {
        self.set(|d| d.id = Some(id.into()))
    }
    /// Dispatches only if `condition` holds.
    pub fn when(self, condition: bool) -> Self {
        self.set(|d| d.enabled &= condition)
    }
    /// Dispatches only if `condition` does not hold.
    pub fn unless(self, condition: bool) -> Self {
        self.when(!condition)
    }
    /// Tags the job: labels that `spool jobs --tag`, the completed history and the dashboard
    /// find it by (its job name, queue and batch are searchable without tagging). At most 16,
    /// each 1-64 bytes without commas or control characters ([`crate::limits::TAG_RULE`]); a
    /// dispatch breaking the rule is refused. Repeats are dropped; calling it again adds more.
    ///
    /// ```no_run
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize)] struct Report { id: u64 }
    /// # impl spool::Job for Report {
    /// #     const NAME: &'static str = "report";
    /// #     async fn handle(self, _: spool::JobContext) -> spool::JobResult { Ok(()) }
    /// # }
    /// # async fn demo(spool: spool::Spool) -> Result<(), spool::DispatchError> {
    /// spool.dispatch(Report { id: 7 }).tags(["tenant:42", "nightly"]).await?;
    /// # Ok(()) }
    /// ```
    pub fn tags<I, S>(self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.set(|d| d.tags.extend(tags.into_iter().map(Into::into)))
    }
    /// Carries the caller's W3C trace context: the worker records its trace id and span id on
    /// the job's span (and, with the `otel` feature, makes that span a child of the caller's).
    /// With the `otel` feature, a dispatch without it carries the current span's context.
    pub fn trace(self, trace: TraceContext) -> Self {
        self.set(|d| d.trace = Some(trace))
    }
}

impl<'a, J: Job> IntoFuture for PendingDispatch<'a, J> {
    type Output = Result<DispatchOutcome, DispatchError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            if !self.enabled {
                return Ok(DispatchOutcome {
                    id: String::new(),
                    status: DispatchStatus::Skipped,
                });
            }
            let queue = self.queue.unwrap_or_else(|| self.job.queue().to_string());
            let options = self.options.or(&self.job.options());
            let mut envelope = self
                .spool
                .unsealed_envelope(&self.job, queue, options, self.id, self.trace)?;
            envelope.tags = crate::store::distinct_tags(&self.tags);
            // Sealed last, once the envelope is final: the id is bound into the sealed data.
            let envelope = self.spool.seal_if(envelope, J::ENCRYPTED)?;
            let mut out = self
                .spool
                .dispatch_envelopes(vec![(envelope, self.delay)])
                .await?;
            Ok(out.remove(0))
        })
    }
}
