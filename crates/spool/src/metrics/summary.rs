//! What `spool stats` and the dashboard show: records over a window summed per queue and per
//! job name, with throughput, failure rate and wait and run percentiles.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Counter, MetricsRecord, Percentiles};

/// One queue's (or one job name's) figures over a window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummaryRow {
    /// The queue or job name.
    pub name: String,
    /// Jobs pushed.
    pub enqueued: u64,
    /// Jobs that ran to success (or were skipped by a cancelled batch).
    pub completed: u64,
    /// Jobs that failed for good.
    pub failed: u64,
    /// Attempts put back for a retry after an error or a timeout.
    pub retried: u64,
    /// Jobs returned by the reaper after their worker died.
    pub rescued: u64,
    /// `failed / (completed + failed)`, 0 without either.
    pub failure_rate: f64,
    /// Completed jobs per minute over the window.
    pub throughput_per_min: f64,
    /// The age of the oldest ready job now, ms (queues only: 0 when none is ready; `None` for
    /// job names).
    pub oldest_ready_age_ms: Option<u64>,
    /// Wait from available to started, ms.
    pub wait_ms: Percentiles,
    /// Run time, ms.
    pub run_ms: Percentiles,
}

/// Figures per queue and per job name over a window, as `spool stats --json` prints them.
///
/// ```
/// use spool::metrics::{Counter, MetricsRecord, Summary};
/// let mut record = MetricsRecord::new(0, "mail", "Send");
/// record.counts.add(Counter::Completed, 30);
/// record.run.record_ms(80.0);
/// let summary = Summary::of(&[record], 15 * 60_000);
/// assert_eq!(summary.queues[0].throughput_per_min, 2.0);
/// assert_eq!(summary.jobs[0].name, "Send");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// The window, ms.
    pub window_ms: i64,
    /// One row per queue.
    pub queues: Vec<SummaryRow>,
    /// One row per job name, summed over its queues.
    pub jobs: Vec<SummaryRow>,
}

impl Summary {
    /// Sums `records` (all inside a window of `window_ms`) per queue and per job name.
    pub fn of(records: &[MetricsRecord], window_ms: i64) -> Summary {
        let mut queues: BTreeMap<&str, MetricsRecord> = BTreeMap::new();
        let mut jobs: BTreeMap<&str, MetricsRecord> = BTreeMap::new();
        for record in records {
            queues.entry(&record.queue).or_default().merge(record);
            jobs.entry(&record.job).or_default().merge(record);
        }
        let rows = |map: BTreeMap<&str, MetricsRecord>| {
            map.into_iter()
                .map(|(name, r)| SummaryRow::of(name, &r, window_ms))
                .collect()
        };
        Summary {
            window_ms,
            queues: rows(queues),
            jobs: rows(jobs),
        }
    }

    /// [`Summary::with_oldest_ready`] from the store's counts, for `queue` or every queue.
    pub fn with_ages_of(self, stats: &crate::store::Stats, queue: Option<&str>) -> Summary {
        let ages = stats
            .queues
            .iter()
            .filter(|q| queue.is_none_or(|name| name == q.name))
            .map(|q| (q.name.clone(), q.oldest_ready_age_ms));
        self.with_oldest_ready(ages)
    }

    /// Fills in each queue's oldest ready age (from the store's live counts), adding a row for
    /// a queue that holds jobs but had no activity in the window.
    pub fn with_oldest_ready(mut self, ages: impl IntoIterator<Item = (String, u64)>) -> Summary {
        for (queue, age) in ages {
            match self.queues.iter_mut().find(|row| row.name == queue) {
                Some(row) => row.oldest_ready_age_ms = Some(age),
                None => {
                    let mut row = SummaryRow::of(&queue, &MetricsRecord::default(), self.window_ms);
                    row.oldest_ready_age_ms = Some(age);
                    self.queues.push(row);
                }
            }
        }
        for row in &mut self.queues {
            row.oldest_ready_age_ms.get_or_insert(0);
        }
        self.queues.sort_by(|a, b| a.name.cmp(&b.name));
        self
    }
}

impl SummaryRow {
    fn of(name: &str, record: &MetricsRecord, window_ms: i64) -> SummaryRow {
        let count = |c| record.counts.get(c);
        let completed = count(Counter::Completed) + count(Counter::Skipped);
        let failed = count(Counter::Failed);
        let ended = completed + failed;
        let minutes = (window_ms as f64 / 60_000.0).max(1.0 / 60.0);
        SummaryRow {
            name: name.to_string(),
            enqueued: count(Counter::Enqueued),
            completed,
            failed,
            retried: count(Counter::Retried),
            rescued: count(Counter::Rescued),
            failure_rate: if ended == 0 {
                0.0
            } else {
                failed as f64 / ended as f64
            },
            throughput_per_min: ((completed as f64 / minutes) * 100.0).round() / 100.0,
            oldest_ready_age_ms: None,
            wait_ms: record.wait.percentiles(),
            run_ms: record.run.percentiles(),
        }
    }
}

/// The records covering the last `window_ms` in `store`: minute records up to 48 hours (their
/// retention), hour records beyond.
pub async fn window_records(
    store: &dyn crate::store::Store,
    window_ms: i64,
    queue: Option<&str>,
) -> crate::store::StoreResult<Vec<MetricsRecord>> {
    let resolution = if window_ms <= super::Resolution::Minute.retention_ms().unwrap_or(0) {
        super::Resolution::Minute
    } else {
        super::Resolution::Hour
    };
    let query = super::MetricsQuery {
        resolution,
        since_ms: resolution.start_of(crate::now_ms() - window_ms),
        queue: queue.map(str::to_string),
    };
    store.metrics(&query).await
}

/// Reads the records of the last `window_ms` from `store` and sums them, with each queue's
/// oldest ready age as of now.
pub async fn summarize(
    store: &dyn crate::store::Store,
    window_ms: i64,
    queue: Option<&str>,
) -> crate::store::StoreResult<Summary> {
    let records = window_records(store, window_ms, queue).await?;
    let stats = store.stats().await?;
    Ok(Summary::of(&records, window_ms).with_ages_of(&stats, queue))
}
