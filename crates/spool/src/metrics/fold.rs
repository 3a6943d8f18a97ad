//! A worker's metrics since its last write: one record per minute, queue and job name, kept in
//! memory and written in one small call about once a minute (not one per job).

use std::{collections::HashMap, sync::Mutex, time::Duration};

use super::{Counter, MetricsRecord, Resolution};

/// Records are dropped past this many unsent ones (a store down for hours): metrics must never
/// grow a worker's memory without bound.
const MAX_PENDING: usize = 100_000;

/// Metrics folded per minute, queue and job name until written.
#[derive(Debug, Default)]
pub(crate) struct Fold {
    records: Mutex<HashMap<(i64, String, String), MetricsRecord>>,
}

impl Fold {
    /// Counts one attempt of `job` on `queue` that started `wait_ms` after it was available
    /// (the store's clock at both ends) and ended as `counter` (`None`: handed back).
    pub(crate) fn note_ended(
        &self,
        now_ms: i64,
        queue: &str,
        job: &str,
        wait_ms: i64,
        counter: Option<Counter>,
    ) {
        self.with(now_ms, queue, job, |record| {
            record.wait.record_ms(wait_ms.max(0) as f64);
            if let Some(counter) = counter {
                record.counts.add(counter, 1);
            }
        });
    }

    /// Counts one handler run of `job` on `queue` that took `run`.
    pub(crate) fn note_ran(&self, now_ms: i64, queue: &str, job: &str, run: Duration) {
        self.with(now_ms, queue, job, |record| record.run.record(run));
    }

    fn with(&self, now_ms: i64, queue: &str, job: &str, change: impl FnOnce(&mut MetricsRecord)) {
        let minute = Resolution::Minute.start_of(now_ms);
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        // Names are copied only the first time in a minute.
        let key = (minute, queue.to_string(), job.to_string());
        if !records.contains_key(&key) && records.len() >= MAX_PENDING {
            return;
        }
        change(
            records
                .entry(key)
                .or_insert_with(|| MetricsRecord::new(minute, queue, job)),
        );
    }

    /// Everything folded since the last call.
    pub(crate) fn take(&self) -> Vec<MetricsRecord> {
        let records = std::mem::take(&mut *self.records.lock().unwrap_or_else(|e| e.into_inner()));
        records.into_values().collect()
    }

    /// Puts back records a write could not store, to be sent with the next one.
    pub(crate) fn put_back(&self, unsent: Vec<MetricsRecord>) {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        for record in unsent {
            let key = (record.at, record.queue.clone(), record.job.clone());
            let room = records.len() < MAX_PENDING;
            match records.entry(key) {
                std::collections::hash_map::Entry::Occupied(mut mine) => {
                    mine.get_mut().merge(&record)
                }
                std::collections::hash_map::Entry::Vacant(slot) if room => {
                    slot.insert(record);
                }
                std::collections::hash_map::Entry::Vacant(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_fold_per_minute_and_survive_a_failed_write() {
        let fold = Fold::default();
        let ran = |at| {
            fold.note_ran(at, "q", "A", Duration::from_millis(20));
            fold.note_ended(at, "q", "A", 5, Some(Counter::Completed));
        };
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
