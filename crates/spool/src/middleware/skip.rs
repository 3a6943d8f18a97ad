//! Complete a job without running it when a condition holds.

use async_trait::async_trait;

use super::{Middleware, Verdict};
use crate::job::JobContext;

type Predicate = Box<dyn Fn(&JobContext) -> bool + Send + Sync>;

/// Skips the handler when a condition holds; the job counts as done (S-MW-5).
pub struct SkipIf {
    predicate: Predicate,
}

impl SkipIf {
    /// Skip when `condition` is true (decided when the job's middleware is built).
    pub fn new(condition: bool) -> Self {
        SkipIf {
            predicate: Box::new(move |_| condition),
        }
    }

    /// Skip when `predicate` returns true for the running attempt.
    pub fn when(predicate: impl Fn(&JobContext) -> bool + Send + Sync + 'static) -> Self {
        SkipIf {
            predicate: Box::new(predicate),
        }
    }
}

impl std::fmt::Debug for SkipIf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SkipIf").finish_non_exhaustive()
    }
}

#[async_trait]
impl Middleware for SkipIf {
    async fn before(&self, ctx: &JobContext) -> Verdict {
        if (self.predicate)(ctx) {
            Verdict::Skip
        } else {
            Verdict::Proceed
        }
    }
}
