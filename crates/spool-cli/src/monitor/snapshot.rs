//! What the monitor shows, read from the store in one go: per queue its depth, pause, a
//! throughput sparkline and wait/run p95 over the last 30 minutes, failures; the workers and
//! supervisors; the latest failed jobs.

use std::collections::BTreeMap;

use spool::{
    Store,
    metrics::{Counter, MetricsQuery, Resolution, Summary},
    store::{FailedFilter, FailedJob, StoreResult},
};

use crate::supervise::registry::SupervisorStatus;

/// The minutes a sparkline and the figures cover.
pub(crate) const MINUTES: usize = 30;

/// One queue's line.
#[derive(Debug, Clone, Default)]
pub(crate) struct QueueLine {
    pub(crate) name: String,
    pub(crate) pending: u64,
    pub(crate) delayed: u64,
    pub(crate) reserved: u64,
    pub(crate) paused: bool,
    /// Completed per minute, oldest first, the current minute last.
    pub(crate) per_minute: Vec<u64>,
    pub(crate) throughput_per_min: f64,
    pub(crate) wait_p95_ms: Option<f64>,
    pub(crate) run_p95_ms: Option<f64>,
    /// Failed for good in the window.
    pub(crate) failed: u64,
    pub(crate) workers: usize,
}

/// One screenful.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    pub(crate) queues: Vec<QueueLine>,
    /// (id, queues, jobs running).
    pub(crate) workers: Vec<(String, Vec<String>, usize)>,
    pub(crate) supervisors: Vec<SupervisorStatus>,
    pub(crate) failed_records: u64,
    pub(crate) recent_failures: Vec<FailedJob>,
}

impl Snapshot {
    /// Reads a snapshot; `only` keeps those queues (all when empty).
    pub(crate) async fn read(store: &dyn Store, only: &[String]) -> StoreResult<Snapshot> {
        let keep = |q: &str| only.is_empty() || only.iter().any(|o| o == q);
        let stats = store.stats().await?.with_control(&store.control().await?);
        let now = spool::now_ms();
        let since = Resolution::Minute.start_of(now) - (MINUTES as i64 - 1) * 60_000;
        let records: Vec<_> = store
            .metrics(&MetricsQuery {
                resolution: Resolution::Minute,
                since_ms: since,
                queue: None,
            })
            .await?
            .into_iter()
            .filter(|r| keep(&r.queue))
            .collect();
        let summary = Summary::of(&records, MINUTES as i64 * 60_000);
        let mut lines: BTreeMap<String, QueueLine> = BTreeMap::new();
        for q in stats.queues.iter().filter(|q| keep(&q.name)) {
            lines.insert(
                q.name.clone(),
                QueueLine {
                    name: q.name.clone(),
                    pending: q.pending,
                    delayed: q.delayed,
                    reserved: q.reserved,
                    paused: q.paused,
                    ..QueueLine::default()
                },
            );
        }
        for row in &summary.queues {
            let line = lines.entry(row.name.clone()).or_insert_with(|| QueueLine {
                name: row.name.clone(),
                ..QueueLine::default()
            });
            line.throughput_per_min = row.throughput_per_min;
            line.wait_p95_ms = row.wait_ms.p95;
            line.run_p95_ms = row.run_ms.p95;
            line.failed = row.failed;
        }
        for line in lines.values_mut() {
            line.per_minute = vec![0; MINUTES];
            line.workers = stats
                .workers
                .iter()
                .filter(|w| w.queues.contains(&line.name))
                .count();
        }
        for r in &records {
            if let Some(line) = lines.get_mut(&r.queue) {
                let i = ((r.at - since) / 60_000).clamp(0, MINUTES as i64 - 1) as usize;
                line.per_minute[i] +=
                    r.counts.get(Counter::Completed) + r.counts.get(Counter::Skipped);
            }
        }
        let (recent_failures, failed_records) = store
            .failed_jobs(&FailedFilter {
                queue: None,
                limit: Some(5),
            })
            .await?;
        let supervisors = crate::supervise::registry::live(store).await?;
        Ok(Snapshot {
            queues: lines.into_values().collect(),
            workers: stats
                .workers
                .iter()
                .map(|w| (w.id.clone(), w.queues.clone(), w.busy.len()))
                .collect(),
            supervisors,
            failed_records,
            recent_failures: recent_failures
                .into_iter()
                .filter(|f| keep(&f.queue))
                .collect(),
        })
    }
}
