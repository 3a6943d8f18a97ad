//! The overview's charts: completed and failed jobs and wait and run p95 per step over the last
//! hour (per minute), day (per 10 minutes) or week (per hour), every step present.

use serde::{Deserialize, Serialize};
use spool::metrics::{Counter, MetricsRecord};

/// A chart's span.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Span {
    /// The last hour, per minute.
    #[default]
    Hour,
    /// The last day, per 10 minutes.
    Day,
    /// The last week, per hour.
    Week,
}

impl Span {
    /// (step, span) in ms.
    fn shape(self) -> (i64, i64) {
        const MINUTE: i64 = 60_000;
        match self {
            Span::Hour => (MINUTE, 60 * MINUTE),
            Span::Day => (10 * MINUTE, 1440 * MINUTE),
            Span::Week => (60 * MINUTE, 7 * 1440 * MINUTE),
        }
    }

    /// The span in ms.
    pub(crate) fn ms(self) -> i64 {
        self.shape().1
    }
}

/// One step of a chart.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Point {
    /// Its start, ms since the Unix epoch.
    at: i64,
    completed: u64,
    failed: u64,
    wait_p95_ms: Option<f64>,
    run_p95_ms: Option<f64>,
}

/// The chart of `span` up to now from `records` ([`spool::metrics::window_records`] of the span).
pub(crate) fn series(records: &[MetricsRecord], span: Span) -> Vec<Point> {
    let (step, len) = span.shape();
    let now = spool::now_ms();
    let first = (now - len) - (now - len).rem_euclid(step) + step;
    let steps = ((now - first) / step + 1) as usize;
    let mut sums = vec![MetricsRecord::default(); steps];
    for record in records {
        let i = (record.at.max(first) - first) / step;
        if let Some(sum) = sums.get_mut(i as usize) {
            sum.merge(record);
        }
    }
    sums.into_iter()
        .enumerate()
        .map(|(i, sum)| Point {
            at: first + i as i64 * step,
            completed: sum.counts.get(Counter::Completed) + sum.counts.get(Counter::Skipped),
            failed: sum.counts.get(Counter::Failed),
            wait_p95_ms: sum.wait.percentiles().p95,
            run_p95_ms: sum.run.percentiles().p95,
        })
        .collect()
}
