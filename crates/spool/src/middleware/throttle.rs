//! Stop calling a failing service for a while after repeated failures.

use std::time::Duration;

use async_trait::async_trait;

use super::{Middleware, Verdict, store_trouble};
use crate::{
    format_duration,
    job::{JobContext, JobError, JobErrorKind, JobResult},
    store::LimitMode,
};

/// After `max` failures within `window` for a key, jobs with that key are deferred (no
/// attempt used) until the oldest failure leaves the window, so a failing provider gets a
/// cool-down instead of a stampede. A success clears the key's failures. Failures are still
/// ordinary failures for the job's own retry policy (tries, backoff, max exceptions), unless
/// [`backoff`](Self::backoff) sets a fixed wait before the next attempt.
#[derive(Debug, Clone)]
pub struct ThrottleExceptions {
    key: String,
    max: u32,
    window: Duration,
    backoff: Option<Duration>,
}

impl ThrottleExceptions {
    /// Cool down `key` after `max` failures within `window` (Laravel's default: 10 per 10 min).
    pub fn new(key: impl Into<String>, max: u32, window: Duration) -> Self {
        ThrottleExceptions {
            key: format!("throttle:{}", key.into()),
            max,
            window,
            backoff: None,
        }
    }

    /// Retry a failed attempt after this fixed wait instead of the job's backoff.
    pub fn backoff(mut self, delay: Duration) -> Self {
        self.backoff = Some(delay);
        self
    }
}

#[async_trait]
impl Middleware for ThrottleExceptions {
    async fn before(&self, ctx: &JobContext) -> Verdict {
        let Some(store) = ctx.store() else {
            return Verdict::Proceed;
        };
        match store.limit(&self.key, self.window, LimitMode::Peek).await {
            Ok(state) if state.count >= self.max => Verdict::Stop(JobError::defer(
                state.resets_in.max(Duration::from_millis(1)),
                format!(
                    "`{}` failed {} times within {}; cooling down for {}",
                    self.key,
                    state.count,
                    format_duration(self.window),
                    format_duration(state.resets_in)
                ),
            )),
            Ok(_) => Verdict::Proceed,
            Err(e) => store_trouble("exception throttle unavailable", e),
        }
    }

    async fn after(&self, ctx: &JobContext, result: JobResult) -> JobResult {
        let Some(store) = ctx.store() else {
            return result;
        };
        match result {
            Ok(()) => {
                if let Err(e) = store.clear_limit(&self.key).await {
                    tracing::warn!("cannot clear `{}`: {e}", self.key);
                }
                Ok(())
            }
            Err(error) if error.kind == JobErrorKind::Retry => {
                if let Err(e) = store.limit(&self.key, self.window, LimitMode::Record).await {
                    tracing::warn!("cannot count a failure for `{}`: {e}", self.key);
                }
                Err(match self.backoff {
                    Some(delay) => error.into_release(delay),
                    None => error,
                })
            }
            Err(other) => Err(other),
        }
    }
}
