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
        self.with(now_ms, queue, job, |record| {
            record.wait.record_ms(attempt.wait_ms.max(0) as f64);
            if let Some(run) = attempt.run {
                record.run.record(run);
            }
            if let Some(counter) = attempt.counter {
                record.counts.add(counter, 1);
            }
        });
    }

    fn with(&self, now_ms: i64, queue: &str, job: &str, change: impl FnOnce(&mut MetricsRecord)) {
        let minute = Resolution::Minute.start_of(now_ms);
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let Pending { by_queue, len } = &mut *pending;
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

    /// Everything folded since the last call.
    pub(crate) fn take(&self) -> Vec<MetricsRecord> {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        pending
            .by_queue
            .into_values()
            .flat_map(HashMap::into_values)
            .flat_map(BTreeMap::into_values)
            .collect()
    }

    /// Puts back records a write could not store, to be sent with the next one.
    pub(crate) fn put_back(&self, unsent: Vec<MetricsRecord>) {
        for record in unsent {
            self.with(
                record.at,
                &record.queue.clone(),
                &record.job.clone(),
                |mine| mine.merge(&record),
            );
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
}
