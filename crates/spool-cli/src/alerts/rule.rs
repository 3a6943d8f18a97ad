//! An `[[alert]]` as checked, and the pure decisions: is it firing on these figures, and what
//! to post given what was posted before (at most once per 5 minutes while firing, once when
//! it clears).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use spool::{metrics::Summary, store::Stats};

use crate::supervise::registry::SupervisorStatus;

/// How often a firing alert is posted again.
pub(crate) const REPEAT: Duration = Duration::from_secs(300);

/// One `[[alert]]`, checked.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Alert {
    pub(crate) name: String,
    pub(crate) webhook: String,
    /// Only this queue; every queue when `None`.
    pub(crate) queue: Option<String>,
    /// The window the p95 and the failure rate are measured over.
    pub(crate) window: Duration,
    pub(crate) wait_p95: Option<Duration>,
    pub(crate) oldest_ready: Option<Duration>,
    pub(crate) failure_rate: Option<f64>,
    pub(crate) no_worker: bool,
    pub(crate) pool_failed: bool,
}

/// The store's state, read once per evaluation for every alert.
#[derive(Debug, Clone)]
pub(crate) struct Facts {
    pub(crate) stats: Stats,
    pub(crate) supervisors: Vec<SupervisorStatus>,
}

impl Alert {
    /// Why it fires on `summary` (over its window) and `facts`, one reason per breached
    /// condition and queue; empty when it does not.
    pub(crate) fn reasons(&self, summary: &Summary, facts: &Facts) -> Vec<String> {
        let mine = |queue: &str| self.queue.as_deref().is_none_or(|q| q == queue);
        let mut reasons = Vec::new();
        for row in summary.queues.iter().filter(|r| mine(&r.name)) {
            let q = &row.name;
            if let (Some(limit), Some(p95)) = (self.wait_p95, row.wait_ms.p95)
                && p95 > limit.as_secs_f64() * 1000.0
            {
                reasons.push(format!(
                    "queue `{q}`: wait p95 {} over {}",
                    crate::stats::format_ms(p95),
                    spool::format_duration(limit)
                ));
            }
            if let (Some(limit), Some(age)) = (self.oldest_ready, row.oldest_ready_age_ms)
                && age as f64 > limit.as_secs_f64() * 1000.0
            {
                reasons.push(format!(
                    "queue `{q}`: oldest ready job waiting {} (over {})",
                    spool::format_duration(Duration::from_millis(age)),
                    spool::format_duration(limit)
                ));
            }
            if let Some(limit) = self.failure_rate
                && row.completed + row.failed > 0
                && row.failure_rate > limit
            {
                reasons.push(format!(
                    "queue `{q}`: failure rate {:.1} % over {:.1} % ({} failed, {} completed)",
                    row.failure_rate * 100.0,
                    limit * 100.0,
                    row.failed,
                    row.completed
                ));
            }
        }
        if self.no_worker {
            for q in facts.stats.queues.iter().filter(|q| mine(&q.name)) {
                let served = facts
                    .stats
                    .workers
                    .iter()
                    .any(|w| w.queues.contains(&q.name));
                if q.pending > 0 && !served && !q.paused {
                    reasons.push(format!(
                        "queue `{}`: {} ready jobs and no live worker serving it",
                        q.name, q.pending
                    ));
                }
            }
        }
        if self.pool_failed {
            for s in &facts.supervisors {
                for pool in s.pools.iter().filter(|p| p.state == "failed") {
                    reasons.push(format!(
                        "supervisor {}: pool `{}` failed: {}",
                        s.id,
                        pool.name,
                        pool.error.as_deref().unwrap_or("no reason given")
                    ));
                }
            }
        }
        reasons
    }
}

/// What was last posted for an alert, kept in the store for every process to see.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Posted {
    /// Whether the last post said it fires.
    pub(crate) firing: bool,
    /// When it was posted, ms since the Unix epoch.
    pub(crate) at: i64,
}

/// What to post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Post {
    Firing,
    Resolved,
}

/// What to post now, if anything, given the last post.
pub(crate) fn decide(last: Option<&Posted>, firing: bool, now_ms: i64) -> Option<Post> {
    let repeat = REPEAT.as_millis() as i64;
    match (last, firing) {
        (None, true) => Some(Post::Firing),
        (Some(p), true) if !p.firing || now_ms - p.at >= repeat => Some(Post::Firing),
        (Some(p), false) if p.firing => Some(Post::Resolved),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_firing_alert_posts_at_most_every_five_minutes_and_once_when_it_clears() {
        let five = REPEAT.as_millis() as i64;
        assert_eq!(decide(None, false, 0), None);
        assert_eq!(decide(None, true, 0), Some(Post::Firing));
        let fired = Posted {
            firing: true,
            at: 1_000,
        };
        assert_eq!(decide(Some(&fired), true, 1_000 + five - 1), None);
        assert_eq!(decide(Some(&fired), true, 1_000 + five), Some(Post::Firing));
        assert_eq!(decide(Some(&fired), false, 2_000), Some(Post::Resolved));
        let resolved = Posted {
            firing: false,
            at: 2_000,
        };
        assert_eq!(decide(Some(&resolved), false, 9_999_999), None);
        assert_eq!(decide(Some(&resolved), true, 2_001), Some(Post::Firing));
    }
}
