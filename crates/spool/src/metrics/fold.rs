//! A worker's metrics since its last write: one record per minute, queue and job name, kept in
//! memory and written in one small call about once a minute (not one per job).

use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
    time::Duration,
};

use super::{Counter, MetricsRecord, Resolution};

/// Records are dropped past this many unsent ones (a store down for hours): metrics must never
/// grow a worker's memory without bound.
const MAX_PENDING: usize = 100_000;

/// Metrics folded per queue, job name and minute until written. Nested maps so that the hot
/// path looks names up as `&str` and allocates only for a new queue or job.
#[derive(Debug, Default)]
pub(crate) struct Fold {
    pending: Mutex<Pending>,
}

#[derive(Debug, Default)]
struct Pending {
    by_queue: HashMap<String, HashMap<String, BTreeMap<i64, MetricsRecord>>>,
    len: usize,
    /// Run time per queue since the last mean was taken: total microseconds and runs (what
    /// supervisors size `auto` pools by, taken more often than the records are written).
    runs: HashMap<String, (u64, u64)>,
}

impl Pending {
    /// Applies `change` to the record of `job` on `queue` for the minute of `now_ms`.
    fn with(
        &mut self,
        now_ms: i64,
        queue: &str,
        job: &str,
        change: impl FnOnce(&mut MetricsRecord),
    ) {
        let minute = Resolution::Minute.start_of(now_ms);
        let Pending { by_queue, len, .. } = self;
        let jobs = match by_queue.get_mut(queue) {
            Some(jobs) => jobs,
            None => by_queue.entry(queue.to_string()).or_default(),
        };
        let minutes = match jobs.get_mut(job) {
            Some(minutes) => minutes,
            None => jobs.entry(job.to_string()).or_default(),
        };
        let record = match minutes.entry(minute) {
            std::collections::btree_map::Entry::Occupied(record) => record.into_mut(),
            std::collections::btree_map::Entry::Vacant(_) if *len >= MAX_PENDING => return,
            std::collections::btree_map::Entry::Vacant(slot) => {
                *len += 1;
                slot.insert(MetricsRecord::new(minute, queue, job))
            }
        };
        change(record);
    }
}

/// One attempt's figures.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attempt {
    /// Time from available to started, in ms (the store's clock at both ends).
    pub(crate) wait_ms: i64,
    /// How long the handler ran, if it ran to an end.
    pub(crate) run: Option<Duration>,
    /// How it ended (`None`: handed back by a shutdown).
    pub(crate) counter: Option<Counter>,
}

impl Fold {
    /// Counts one attempt of `job` on `queue`, at `now_ms`: one lock, no allocation unless
    /// the queue, job name or minute is new.
    pub(crate) fn note(&self, now_ms: i64, queue: &str, job: &str, attempt: Attempt) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(run) = attempt.run {
            let micros = u64::try_from(run.as_micros()).unwrap_or(u64::MAX);
            let runs = &mut pending.runs;
            let (total, n) = match runs.get_mut(queue) {
                Some(sum) => sum,
                None => runs.entry(queue.to_string()).or_default(),
            };
            *total = total.saturating_add(micros);
            *n += 1;
        }
        pending.with(now_ms, queue, job, |record| {
            record.wait.record_ms(attempt.wait_ms.max(0) as f64);
            if let Some(run) = attempt.run {
                record.run.record(run);
            }
            if let Some(counter) = attempt.counter {
                record.counts.add(counter, 1);
            }
        });
    }

    /// Each queue's mean run time since the last call, in microseconds.
    pub(crate) fn take_mean_runs(&self) -> Vec<(String, i64)> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut pending.runs)
            .into_iter()
            .filter(|(_, (_, n))| *n > 0)
            .map(|(queue, (total, n))| (queue, i64::try_from(total / n).unwrap_or(i64::MAX)))
            .collect()
    }

    /// Everything folded since the last call (the run-time sums stay for their own taker).
    pub(crate) fn take(&self) -> Vec<MetricsRecord> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.len = 0;
        std::mem::take(&mut pending.by_queue)
            .into_values()
            .flat_map(HashMap::into_values)
            .flat_map(BTreeMap::into_values)
            .collect()
    }

    /// Puts back records a write could not store, to be sent with the next one.
    pub(crate) fn put_back(&self, unsent: Vec<MetricsRecord>) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for record in unsent {
            pending.with(record.at, &record.queue, &record.job, |mine| {
                mine.merge(&record)
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_fold_per_minute_and_survive_a_failed_write() {
        let fold = Fold::default();
        let attempt = Attempt {
            wait_ms: 5,
            run: Some(Duration::from_millis(20)),
            counter: Some(Counter::Completed),
        };
        let ran = |at| fold.note(at, "q", "A", attempt);
        ran(60_000);
        ran(119_999);
        ran(120_000);
        let mut taken = fold.take();
        taken.sort_by_key(|r| r.at);
        assert_eq!(taken.len(), 2);
        assert_eq!(taken[0].counts.get(Counter::Completed), 2);
        assert_eq!(taken[1].run.count(), 1);
        assert!(fold.take().is_empty());
        ran(60_000);
        fold.put_back(taken);
        let again = fold.take();
        let total: u64 = again.iter().map(|r| r.counts.get(Counter::Completed)).sum();
        assert_eq!(total, 4);
    }

    #[test]
    fn mean_run_times_are_taken_apart_from_the_records() {
        let fold = Fold::default();
        for ms in [10, 30] {
            let attempt = Attempt {
                wait_ms: 0,
                run: Some(Duration::from_millis(ms)),
                counter: Some(Counter::Completed),
            };
            fold.note(0, "q", "A", attempt);
        }
        assert_eq!(fold.take().len(), 1);
        assert_eq!(fold.take_mean_runs(), [("q".to_string(), 20_000)]);
        assert!(fold.take_mean_runs().is_empty());
    }
}
