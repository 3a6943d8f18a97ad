//! Job middleware: steps that run around a job's handler and may stop it first.
//!
//! A job lists its middleware in [`Job::middleware`](crate::Job::middleware), built from the
//! job's own data so keys can name it (one lock per document, one limit per provider). The
//! steps run in order before the handler and in reverse order after it. The built-in steps
//! keep their state in the store, so limits hold across every worker and machine:
//!
//! | step | what it does |
//! |---|---|
//! | [`RateLimited`] | at most N starts per sliding window, per key |
//! | [`ConcurrencyLimited`] | at most N running at once, per key; a crashed worker's slot is freed with its lease |
//! | [`WithoutOverlapping`] | never two at once per key (a concurrency limit of 1) |
//! | [`ThrottleExceptions`] | after N failures in a window, stop calling the failing service for the rest of it |
//! | [`SkipIf`] | complete without running when a condition holds |
//!
//! A job held back by a limit is *deferred*: it returns to the queue for when the limit frees,
//! without using an attempt (D-2), up to the worker's `max_deferrals`.
//!
//! ```
//! use std::time::Duration;
//! use serde::{Deserialize, Serialize};
//! use spool::{Job, JobContext, JobResult, middleware::{Middleware, RateLimited, WithoutOverlapping}};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Summarise { document: u64 }
//!
//! impl Job for Summarise {
//!     const NAME: &'static str = "summarise";
//!     fn middleware(&self) -> Vec<Box<dyn Middleware>> {
//!         vec![
//!             Box::new(RateLimited::new("openai", 60, Duration::from_secs(60))),
//!             Box::new(WithoutOverlapping::new(format!("document:{}", self.document))),
//!         ]
//!     }
//!     async fn handle(self, _ctx: JobContext) -> JobResult {
//!         Ok(())
//!     }
//! }
//! ```

use async_trait::async_trait;

use crate::job::{Job, JobContext, JobError, JobResult};

mod concurrency;
mod rate_limit;
mod skip;
mod throttle;

pub use concurrency::{ConcurrencyLimited, WithoutOverlapping};
pub use rate_limit::RateLimited;
pub use skip::SkipIf;
pub use throttle::ThrottleExceptions;

/// What a middleware step decides before the handler runs.
#[derive(Debug)]
pub enum Verdict {
    /// Go on to the next step, then the handler.
    Proceed,
    /// Don't run the handler; the job counts as done (its chain goes on, its batch counts a
    /// success: S-MW-1).
    Skip,
    /// Don't run the handler; settle the attempt with this error (a deferral, a release, a
    /// failure or a retry).
    Stop(JobError),
}

/// A step around a job's handler. Implement it for your own steps.
///
/// ```
/// use async_trait::async_trait;
/// use spool::{JobContext, JobResult, middleware::{Middleware, Verdict}};
///
/// /// Logs how long each attempt took.
/// struct Timed;
///
/// #[async_trait]
/// impl Middleware for Timed {
///     async fn before(&self, ctx: &JobContext) -> Verdict {
///         tracing::info!(job = ctx.job(), "starting");
///         Verdict::Proceed
///     }
///     async fn after(&self, ctx: &JobContext, result: JobResult) -> JobResult {
///         tracing::info!(job = ctx.job(), ok = result.is_ok(), "finished");
///         result
///     }
/// }
/// ```
#[async_trait]
pub trait Middleware: Send + Sync {
    /// Runs before the handler.
    async fn before(&self, ctx: &JobContext) -> Verdict;

    /// Runs after the handler (only when every `before` let it through) and may change the
    /// result. The default passes it on.
    async fn after(&self, ctx: &JobContext, result: JobResult) -> JobResult {
        let _ = ctx;
        result
    }
}

/// Runs `job` through its middleware and its handler.
pub(crate) async fn run<J: Job>(job: J, ctx: JobContext) -> JobResult {
    let stack = job.middleware();
    if stack.is_empty() {
        return job.handle(ctx).await;
    }
    for step in &stack {
        match step.before(&ctx).await {
            Verdict::Proceed => {}
            Verdict::Skip => return Ok(()),
            Verdict::Stop(error) => return Err(error),
        }
    }
    let mut result = job.handle(ctx.clone()).await;
    for step in stack.iter().rev() {
        result = step.after(&ctx, result).await;
    }
    result
}

/// The deferral for a limiter the store could not answer: try again soon, no attempt used.
fn store_trouble(what: &str, error: crate::StoreError) -> Verdict {
    Verdict::Stop(JobError::defer(
        std::time::Duration::from_secs(1),
        format!("{what}: {error}"),
    ))
}

/// A delay with up to 10 % added at random, so deferred jobs don't return in lockstep.
fn spread(delay: std::time::Duration) -> std::time::Duration {
    delay + delay.mul_f64(fastrand::f64() / 10.0)
}
