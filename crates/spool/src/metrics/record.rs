//! One stored metrics record: what happened to one job name on one queue in one minute (or
//! hour, or ever), and how stores keep it as cells that add up with `n = n + excluded.n`.

use std::collections::BTreeMap;

use super::Histogram;

/// What a job counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Counter {
    /// Pushed onto its queue (counted by the store with the push).
    Enqueued,
    /// Ran to success.
    Completed,
    /// Failed for good (moved to the failed store).
    Failed,
    /// Put back for another try after an error or a timeout.
    Retried,
    /// Put back by its handler or middleware.
    Released,
    /// Put back without using a try (a rate limit, a provider's wait).
    Deferred,
    /// Returned to its queue by the reaper after its worker died.
    Rescued,
    /// Done without running: its batch was cancelled.
    Skipped,
}

impl Counter {
    /// Every counter, in the order of [`Counts`].
    pub const ALL: [Counter; 8] = [
        Counter::Enqueued,
        Counter::Completed,
        Counter::Failed,
        Counter::Retried,
        Counter::Released,
        Counter::Deferred,
        Counter::Rescued,
        Counter::Skipped,
    ];

    /// The counter's name in the store and in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Counter::Enqueued => "enqueued",
            Counter::Completed => "completed",
            Counter::Failed => "failed",
            Counter::Retried => "retried",
            Counter::Released => "released",
            Counter::Deferred => "deferred",
            Counter::Rescued => "rescued",
            Counter::Skipped => "skipped",
        }
    }

    /// The counter of that name.
    pub fn parse(name: &str) -> Option<Counter> {
        Counter::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

/// One number per [`Counter`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts([u64; 8]);

impl Counts {
    /// The count of `counter`.
    pub fn get(&self, counter: Counter) -> u64 {
        self.0[counter as usize]
    }

    /// Adds `n` to `counter`.
    pub fn add(&mut self, counter: Counter, n: u64) {
        let slot = &mut self.0[counter as usize];
        *slot = slot.saturating_add(n);
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Counts) {
        for counter in Counter::ALL {
            self.add(counter, other.get(counter));
        }
    }

    /// Whether every count is zero.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|n| *n == 0)
    }
}

/// How finely records are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resolution {
    /// One record per minute, kept 48 hours.
    Minute,
    /// One record per hour, kept 30 days.
    Hour,
    /// One record for all time, never pruned (what Prometheus counters read).
    Total,
}

impl Resolution {
    /// Every resolution a record is written at.
    pub const ALL: [Resolution; 3] = [Resolution::Minute, Resolution::Hour, Resolution::Total];

    /// The length of one period in milliseconds (0 for [`Resolution::Total`]); also the code a
    /// store keeps the resolution under (in seconds: 60, 3600, 0).
    pub fn seconds(self) -> i64 {
        match self {
            Resolution::Minute => 60,
            Resolution::Hour => 3600,
            Resolution::Total => 0,
        }
    }

    /// The resolution stored under `seconds`.
    pub fn from_seconds(seconds: i64) -> Option<Resolution> {
        Resolution::ALL.into_iter().find(|r| r.seconds() == seconds)
    }

    /// The start of the period holding `ms` (0 for [`Resolution::Total`]).
    pub fn start_of(self, ms: i64) -> i64 {
        match self.seconds() * 1000 {
            0 => 0,
            len => ms - ms.rem_euclid(len),
        }
    }

    /// For each pruned resolution, its code and the period start before which its records
    /// go, as of `now_ms`.
    pub(crate) fn cutoffs(now_ms: i64) -> impl Iterator<Item = (i64, i64)> {
        Resolution::ALL
            .into_iter()
            .filter_map(move |r| Some((r.seconds(), now_ms - r.retention_ms()?)))
    }

    /// How long records of this resolution are kept, in milliseconds (`None`: for ever).
    pub fn retention_ms(self) -> Option<i64> {
        match self {
            Resolution::Minute => Some(48 * 3_600_000),
            Resolution::Hour => Some(30 * 86_400_000),
            Resolution::Total => None,
        }
    }
}

/// The counts and latencies of one job name on one queue over one period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsRecord {
    /// The start of the period, ms since the Unix epoch (0 for all-time totals). When
    /// recording, any instant inside the minute.
    pub at: i64,
    /// The queue.
    pub queue: String,
    /// The job name.
    pub job: String,
    /// How many jobs ended each way.
    pub counts: Counts,
    /// Time from available to started, for every attempt that started.
    pub wait: Histogram,
    /// Time the handler ran, for every attempt that ran.
    pub run: Histogram,
}

impl MetricsRecord {
    /// An empty record.
    pub fn new(at: i64, queue: impl Into<String>, job: impl Into<String>) -> MetricsRecord {
        MetricsRecord {
            at,
            queue: queue.into(),
            job: job.into(),
            ..MetricsRecord::default()
        }
    }

    /// Adds another record's numbers (whatever its period and names).
    pub fn merge(&mut self, other: &MetricsRecord) {
        self.counts.merge(&other.counts);
        self.wait.merge(&other.wait);
        self.run.merge(&other.run);
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.wait.count() == 0 && self.run.count() == 0
    }
}

/// What [`crate::store::MetricsStore::metrics`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsQuery {
    /// Which records.
    pub resolution: Resolution,
    /// Periods starting at or after this instant (ms since the Unix epoch); ignored for totals.
    pub since_ms: i64,
    /// Only this queue, or every queue.
    pub queue: Option<String>,
}

impl MetricsQuery {
    /// The first period start to read: `since_ms`, or 0 for totals (stored at 0).
    pub(crate) fn first_period(&self) -> i64 {
        match self.resolution {
            Resolution::Total => 0,
            _ => self.since_ms,
        }
    }
}

/// The key of one stored cell: resolution (seconds), period start, queue, job, series, bucket.
pub(crate) type CellKey = (i64, i64, String, String, &'static str, i64);

/// The series a cell belongs to: a counter's name, `wait`/`run` (by bucket) or
/// `wait_sum`/`run_sum` (microseconds, bucket 0).
fn series(record: &MetricsRecord) -> impl Iterator<Item = (&'static str, i64, u64)> + '_ {
    let counts = Counter::ALL
        .into_iter()
        .map(|c| (c.as_str(), 0, record.counts.get(c)));
    let hists = [("wait", &record.wait), ("run", &record.run)]
        .into_iter()
        .flat_map(|(name, h)| h.buckets().map(move |(i, n)| (name, i as i64, n)));
    let sums = [
        ("wait_sum", record.wait.sum_us()),
        ("run_sum", record.run.sum_us()),
    ]
    .into_iter()
    .map(|(name, us)| (name, 0, us));
    counts.chain(hists).chain(sums).filter(|(_, _, n)| *n > 0)
}

/// The cells to add for `records`, each written at every resolution, merged by key and in key
/// order (so concurrent writers lock rows in the same order and never deadlock).
pub(crate) fn cells(records: &[MetricsRecord]) -> BTreeMap<CellKey, i64> {
    let mut out = BTreeMap::new();
    for record in records {
        for resolution in Resolution::ALL {
            let at = resolution.start_of(record.at);
            for (name, bucket, n) in series(record) {
                let key = (
                    resolution.seconds(),
                    at,
                    record.queue.clone(),
                    record.job.clone(),
                    name,
                    bucket,
                );
                let cell = out.entry(key).or_insert(0i64);
                *cell = cell.saturating_add(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
    }
    out
}

/// Records from stored cells `(at, queue, job, series, bucket, n)`, in (at, queue, job)
/// order; cells of series this build does not know are skipped (written by a newer one).
pub(crate) fn from_cells(
    rows: impl IntoIterator<Item = (i64, String, String, String, i64, i64)>,
) -> Vec<MetricsRecord> {
    let mut records: BTreeMap<(i64, String, String), MetricsRecord> = BTreeMap::new();
    for (at, queue, job, series, bucket, n) in rows {
        let n = u64::try_from(n).unwrap_or(0);
        let record = records
            .entry((at, queue.clone(), job.clone()))
            .or_insert_with(|| MetricsRecord::new(at, queue, job));
        let bucket = usize::try_from(bucket).unwrap_or(usize::MAX);
        match series.as_str() {
            "wait" => record.wait.add_bucket(bucket, n),
            "run" => record.run.add_bucket(bucket, n),
            "wait_sum" => record.wait.add_sum_us(n),
            "run_sum" => record.run.add_sum_us(n),
            name => {
                if let Some(counter) = Counter::parse(name) {
                    record.counts.add(counter, n);
                }
            }
        }
    }
    records.into_values().collect()
}

/// The enqueued counts of a push at `now_ms`: one record per queue and job name pushed.
pub(crate) fn enqueued<'a>(
    now_ms: i64,
    pushed: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<MetricsRecord> {
    counted(Counter::Enqueued, now_ms, pushed)
}

/// The (queue, job name) of each job a push queued (not those already queued).
pub(crate) fn queued<'a>(
    jobs: &'a [crate::store::NewJob],
    outcomes: &'a [crate::store::PushOutcome],
) -> impl Iterator<Item = (&'a str, &'a str)> {
    jobs.iter()
        .zip(outcomes)
        .filter(|(_, o)| **o == crate::store::PushOutcome::Queued)
        .map(|(j, _)| (j.queue.as_str(), j.job.as_str()))
}

/// The rescued counts of a reap at `now_ms`: one record per queue and job name returned to
/// its queue after its worker died.
pub(crate) fn rescued<'a>(
    now_ms: i64,
    returned: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<MetricsRecord> {
    counted(Counter::Rescued, now_ms, returned)
}

fn counted<'a>(
    counter: Counter,
    now_ms: i64,
    jobs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<MetricsRecord> {
    let mut by_name: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for key in jobs {
        *by_name.entry(key).or_default() += 1;
    }
    by_name
        .into_iter()
        .map(|((queue, job), n)| {
            let mut record = MetricsRecord::new(now_ms, queue, job);
            record.counts.add(counter, n);
            record
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_round_trip_at_every_resolution() {
        let mut record = MetricsRecord::new(3_723_456, "mail", "Send");
        record.counts.add(Counter::Completed, 3);
        record.counts.add(Counter::Failed, 1);
        record.wait.record_ms(5.0);
        record.run.record_ms(120.0);
        record.run.record_ms(130.0);
        let cells = cells(&[record.clone(), record.clone()]);
        let rows = |res: i64| {
            cells
                .iter()
                .filter(move |(k, _)| k.0 == res)
                .map(|(k, n)| (k.1, k.2.clone(), k.3.clone(), k.4.to_string(), k.5, *n))
        };
        for (res, at) in [(60, 3_720_000), (3600, 3_600_000), (0, 0)] {
            let back = from_cells(rows(res));
            assert_eq!(back.len(), 1);
            let mut twice = record.clone();
            twice.merge(&record);
            twice.at = at;
            assert_eq!(back[0], twice, "resolution {res}");
        }
        // A sparse minute stays small: 2 counters, 1 wait and 2 run buckets (one each here
        // as 120 and 130 share a bucket), 2 sums.
        assert!(rows(60).count() <= 7);
    }
}
