//! At most N jobs running at once per key, across every worker; overlap locks.

use std::time::Duration;

use async_trait::async_trait;

use super::{Middleware, Verdict, spread, store_trouble};
use crate::{
    format_duration,
    job::{JobContext, JobError},
    store::SlotRequest,
};

/// Lets at most `limit` jobs with the same key run at once. Each running job holds a slot in
/// the store under its worker's lease: the slot is freed when the job is settled, when its
/// worker dies (with the lease), or after [`expire_after`](Self::expire_after). A job that
/// finds no free slot is deferred for [`release_after`](Self::release_after) (default 1 s),
/// without using an attempt.
#[derive(Debug, Clone)]
pub struct ConcurrencyLimited {
    key: String,
    limit: u32,
    release_after: Duration,
    expire_after: Option<Duration>,
    drop_when_busy: bool,
}

impl ConcurrencyLimited {
    /// At most `limit` running jobs share `key`.
    pub fn new(key: impl Into<String>, limit: u32) -> Self {
        ConcurrencyLimited {
            key: format!("concurrency:{}", key.into()),
            limit,
            release_after: Duration::from_secs(1),
            expire_after: None,
            drop_when_busy: false,
        }
    }

    /// How long a job that found no slot waits before trying again.
    pub fn release_after(mut self, delay: Duration) -> Self {
        self.release_after = delay;
        self
    }

    /// Frees a slot after this long even if its job still runs (a stuck job cannot hold it
    /// for ever).
    pub fn expire_after(mut self, ttl: Duration) -> Self {
        self.expire_after = Some(ttl);
        self
    }

    /// A job that finds no slot is dropped as done instead of waiting (`dontRelease`).
    pub fn drop_when_busy(mut self) -> Self {
        self.drop_when_busy = true;
        self
    }
}

#[async_trait]
impl Middleware for ConcurrencyLimited {
    async fn before(&self, ctx: &JobContext) -> Verdict {
        let Some(link) = ctx.link.as_ref() else {
            return Verdict::Proceed;
        };
        let request = SlotRequest {
            key: self.key.clone(),
            limit: self.limit,
            job_id: ctx.id().to_string(),
            token: link.token,
            expire_after: self.expire_after,
        };
        match link.store.acquire_slot(&link.worker_id, &request).await {
            Ok(true) => Verdict::Proceed,
            Ok(false) if self.drop_when_busy => Verdict::Skip,
            Ok(false) => {
                let wait = spread(self.release_after);
                Verdict::Stop(JobError::defer(
                    wait,
                    format!(
                        "`{}` is at its limit of {} running; trying again in {}",
                        self.key,
                        self.limit,
                        format_duration(wait)
                    ),
                ))
            }
            Err(e) => store_trouble("concurrency limiter unavailable", e),
        }
    }
}

/// Never runs two jobs with the same key at once (Laravel's `WithoutOverlapping`): a
/// concurrency limit of one, with the same lease protection, so a crashed worker cannot leave
/// the key locked.
#[derive(Debug, Clone)]
pub struct WithoutOverlapping(ConcurrencyLimited);

impl WithoutOverlapping {
    /// One job at a time per `key`.
    pub fn new(key: impl Into<String>) -> Self {
        let mut inner = ConcurrencyLimited::new(String::new(), 1);
        inner.key = format!("overlap:{}", key.into());
        WithoutOverlapping(inner)
    }

    /// How long a job that found the key busy waits before trying again (default 1 s).
    pub fn release_after(self, delay: Duration) -> Self {
        WithoutOverlapping(self.0.release_after(delay))
    }

    /// Frees the key after this long even if its job still runs.
    pub fn expire_after(self, ttl: Duration) -> Self {
        WithoutOverlapping(self.0.expire_after(ttl))
    }

    /// A job that finds the key busy is dropped as done instead of waiting.
    pub fn drop_when_busy(self) -> Self {
        WithoutOverlapping(self.0.drop_when_busy())
    }
}

#[async_trait]
impl Middleware for WithoutOverlapping {
    async fn before(&self, ctx: &JobContext) -> Verdict {
        self.0.before(ctx).await
    }
}
