//! At most N job starts per sliding window, per key, across every worker.

use std::time::Duration;

use async_trait::async_trait;

use super::{Middleware, Verdict, spread, store_trouble};
use crate::{
    format_duration,
    job::{JobContext, JobError},
    store::LimitMode,
};

/// Lets at most `limit` jobs with the same key start in any window of `per` (a sliding
/// window, checked and counted atomically in the store, so the limit holds exactly across
/// workers). A job over the limit is deferred until the window frees, without using an
/// attempt (Laravel's limiter consumes one; use
/// [`release_consumes_attempt`](Self::release_consumes_attempt) for that).
#[derive(Debug, Clone)]
pub struct RateLimited {
    key: String,
    limit: u32,
    per: Duration,
    consume_attempt: bool,
    drop_when_limited: bool,
}

impl RateLimited {
    /// `limit` starts per `per` for jobs sharing `key`.
    pub fn new(key: impl Into<String>, limit: u32, per: Duration) -> Self {
        RateLimited {
            key: key.into(),
            limit,
            per,
            consume_attempt: false,
            drop_when_limited: false,
        }
    }

    /// A held-back job uses an attempt (Laravel's behaviour).
    pub fn release_consumes_attempt(mut self) -> Self {
        self.consume_attempt = true;
        self
    }

    /// A held-back job is dropped as done instead of waiting (Laravel's `dontRelease`).
    pub fn drop_when_limited(mut self) -> Self {
        self.drop_when_limited = true;
        self
    }
}

#[async_trait]
impl Middleware for RateLimited {
    async fn before(&self, ctx: &JobContext) -> Verdict {
        let Some(store) = ctx.store() else {
            return Verdict::Proceed;
        };
        let key = format!("rate:{}", self.key);
        let state = match store
            .limit(&key, self.per, LimitMode::Acquire(self.limit))
            .await
        {
            Ok(state) => state,
            Err(e) => return store_trouble("rate limiter unavailable", e),
        };
        if state.hit {
            return Verdict::Proceed;
        }
        if self.drop_when_limited {
            return Verdict::Skip;
        }
        let wait = spread(state.resets_in.max(Duration::from_millis(1)));
        let reason = format!(
            "rate limit `{}` reached ({} per {}); next slot in {}",
            self.key,
            self.limit,
            format_duration(self.per),
            format_duration(wait)
        );
        Verdict::Stop(if self.consume_attempt {
            JobError::release(wait).with_message(reason)
        } else {
            JobError::defer(wait, reason)
        })
    }
}
