//! A mergeable latency histogram: fixed buckets growing ×1.5 from 1 ms to past an hour, so
//! records from any number of workers and minutes add up exactly, and a quantile read from
//! them is off by at most one bucket (a third of the value).

use serde::Serialize;

/// How many buckets a [`Histogram`] has: bucket `i < 39` holds values up to 1.5^i ms
/// (1 ms, 1.5 ms, 2.25 ms, ... 4,924 s), the last one everything above.
pub const BUCKETS: usize = 40;

const GROWTH: f64 = 1.5;

/// Counts of durations by bucket, and their sum.
///
/// ```
/// use spool::metrics::Histogram;
/// let mut h = Histogram::default();
/// for ms in [2, 3, 40, 41, 900] {
///     h.record_ms(ms as f64);
/// }
/// assert_eq!(h.count(), 5);
/// let p50 = h.quantile_ms(0.5).unwrap();
/// assert!((40.0..=40.0 * 1.5).contains(&p50));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram {
    counts: [u64; BUCKETS],
    sum_us: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: [0; BUCKETS],
            sum_us: 0,
        }
    }
}

impl Histogram {
    /// The upper bound of bucket `i` in milliseconds (infinite for the last one).
    pub fn upper_bound_ms(i: usize) -> f64 {
        if i + 1 >= BUCKETS {
            f64::INFINITY
        } else {
            GROWTH.powi(i as i32)
        }
    }

    /// The bucket a duration of `ms` milliseconds falls in.
    pub fn bucket_of(ms: f64) -> usize {
        if ms.is_nan() || ms <= 1.0 {
            return 0;
        }
        let guess = (ms.ln() / GROWTH.ln()).ceil() as usize;
        let mut i = guess.min(BUCKETS - 1);
        // Rounding in the logarithm can land one bucket high or low on exact bounds.
        while i > 0 && ms <= Self::upper_bound_ms(i - 1) {
            i -= 1;
        }
        while ms > Self::upper_bound_ms(i) {
            i += 1;
        }
        i
    }

    /// Counts one duration of `ms` milliseconds.
    pub fn record_ms(&mut self, ms: f64) {
        let ms = if ms.is_finite() { ms.max(0.0) } else { 0.0 };
        self.counts[Self::bucket_of(ms)] += 1;
        self.sum_us = self.sum_us.saturating_add((ms * 1000.0) as u64);
    }

    /// Counts one duration.
    pub fn record(&mut self, duration: std::time::Duration) {
        self.record_ms(duration.as_secs_f64() * 1000.0);
    }

    /// Adds `n` to bucket `i` (what a store reads back).
    pub fn add_bucket(&mut self, i: usize, n: u64) {
        if let Some(count) = self.counts.get_mut(i) {
            *count = count.saturating_add(n);
        }
    }

    /// Adds to the sum, in microseconds (what a store reads back).
    pub fn add_sum_us(&mut self, us: u64) {
        self.sum_us = self.sum_us.saturating_add(us);
    }

    /// Adds another histogram's counts to this one.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts) {
            *mine = mine.saturating_add(theirs);
        }
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
    }

    /// How many durations were counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The sum of the durations, in microseconds.
    pub fn sum_us(&self) -> u64 {
        self.sum_us
    }

    /// The non-empty buckets as (index, count).
    pub fn buckets(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| (i, *n))
    }

    /// The counts of every bucket, in order (Prometheus makes them cumulative).
    pub fn counts(&self) -> &[u64; BUCKETS] {
        &self.counts
    }

    /// The `q` quantile (0..=1) in milliseconds: the upper bound of the bucket holding it (the
    /// last bucket answers with its lower bound). `None` when nothing was counted.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(if i + 1 == BUCKETS {
                    Self::upper_bound_ms(i - 1)
                } else {
                    Self::upper_bound_ms(i)
                });
            }
        }
        None
    }

    /// p50, p95 and p99 in milliseconds, as `spool stats` shows them.
    pub fn percentiles(&self) -> Percentiles {
        // Bounds to the microsecond: more digits say nothing about a bucket.
        let q = |q| self.quantile_ms(q).map(|ms| (ms * 1000.0).round() / 1000.0);
        Percentiles {
            p50: q(0.50),
            p95: q(0.95),
            p99: q(0.99),
        }
    }
}

/// Three quantiles of a [`Histogram`], in milliseconds (`None` without data).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// The median.
    pub p50: Option<f64>,
    /// The 95th percentile.
    pub p95: Option<f64>,
    /// The 99th percentile.
    pub p99: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_grow_by_half_and_hold_their_bounds() {
        assert_eq!(Histogram::bucket_of(0.0), 0);
        assert_eq!(Histogram::bucket_of(1.0), 0);
        assert_eq!(Histogram::bucket_of(1.2), 1);
        assert_eq!(Histogram::bucket_of(1.5), 1);
        assert_eq!(Histogram::bucket_of(2.25), 2);
        assert_eq!(Histogram::bucket_of(2.3), 3);
        // An hour is inside the bounded buckets; a day is in the last.
        assert!(Histogram::bucket_of(3_600_000.0) < BUCKETS - 1);
        assert_eq!(Histogram::bucket_of(86_400_000.0), BUCKETS - 1);
        for i in 0..BUCKETS - 1 {
            let bound = Histogram::upper_bound_ms(i);
            assert_eq!(Histogram::bucket_of(bound), i, "bound of {i}");
            assert_eq!(Histogram::bucket_of(bound * 1.0001), i + 1);
        }
    }

    #[test]
    fn quantiles_are_within_one_bucket_and_merging_adds_up() {
        let mut a = Histogram::default();
        let mut b = Histogram::default();
        for ms in 1..=100 {
            if ms % 2 == 0 { &mut a } else { &mut b }.record_ms(ms as f64);
        }
        a.merge(&b);
        assert_eq!(a.count(), 100);
        assert_eq!(a.sum_us(), 5050 * 1000);
        let p95 = a.quantile_ms(0.95).unwrap();
        assert!((95.0..=95.0 * 1.5).contains(&p95), "{p95}");
        assert_eq!(Histogram::default().quantile_ms(0.5), None);
        let mut far = Histogram::default();
        far.record_ms(1e9);
        assert!(far.quantile_ms(1.0).unwrap().is_finite());
    }
}
