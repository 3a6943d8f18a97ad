//! A token bucket at the per-second grain, as providers enforce their per-minute limits:
//! capacity a burst's worth of the limit, refilled continuously.

/// One limit's bucket.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    /// The per-minute limit.
    pub(crate) limit: u64,
    capacity: f64,
    per_ms: f64,
    level: f64,
    at_ms: f64,
}

impl Bucket {
    /// A full bucket for `limit` a minute holding `burst_ms` of it.
    pub(crate) fn new(limit: u64, burst_ms: f64, now_ms: f64) -> Bucket {
        let per_ms = limit as f64 / 60_000.0;
        Bucket {
            limit,
            capacity: (per_ms * burst_ms).max(1.0),
            per_ms,
            level: (per_ms * burst_ms).max(1.0),
            at_ms: now_ms,
        }
    }

    fn refill(&mut self, now_ms: f64) {
        if now_ms > self.at_ms {
            self.level = (self.level + (now_ms - self.at_ms) * self.per_ms).min(self.capacity);
            self.at_ms = now_ms;
        }
    }

    /// How long until `units` fit (0 if they fit now). A request larger than the bucket fits
    /// when the bucket is full.
    pub(crate) fn wait_ms(&mut self, units: f64, now_ms: f64) -> f64 {
        self.refill(now_ms);
        let need = units.min(self.capacity);
        if self.level >= need {
            0.0
        } else {
            (need - self.level) / self.per_ms
        }
    }

    /// Takes `units` (the level may go below zero for a request larger than the bucket).
    pub(crate) fn take(&mut self, units: f64, now_ms: f64) {
        self.refill(now_ms);
        self.level -= units;
    }

    /// Gives back `units` (never above capacity).
    pub(crate) fn give(&mut self, units: f64, now_ms: f64) {
        self.refill(now_ms);
        self.level = (self.level + units).min(self.capacity);
    }

    /// What is left, scaled to the per-minute view the headers give.
    pub(crate) fn remaining(&mut self, now_ms: f64) -> u64 {
        self.refill(now_ms);
        (self.level.max(0.0) / self.capacity * self.limit as f64).floor() as u64
    }

    /// How long until the bucket is full again, ms.
    pub(crate) fn reset_ms(&mut self, now_ms: f64) -> f64 {
        self.refill(now_ms);
        (self.capacity - self.level) / self.per_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        // 6,000 a minute at a one-second grain: 100 at once, then one every 10 ms.
        let mut b = Bucket::new(6_000, 1_000.0, 0.0);
        for _ in 0..100 {
            assert_eq!(b.wait_ms(1.0, 0.0), 0.0);
            b.take(1.0, 0.0);
        }
        assert!((b.wait_ms(1.0, 0.0) - 10.0).abs() < 1e-6);
        assert_eq!(b.wait_ms(1.0, 10.0), 0.0);
        assert_eq!(b.remaining(10.0), 60);
        b.give(50.0, 10.0);
        // 51 of 100: 49 to refill at 0.1 a millisecond.
        assert!((b.reset_ms(10.0) - 490.0).abs() < 1e-6);
    }

    #[test]
    fn a_request_larger_than_the_bucket_passes_when_it_is_full() {
        let mut b = Bucket::new(600, 1_000.0, 0.0);
        assert_eq!(b.wait_ms(50.0, 0.0), 0.0);
        b.take(50.0, 0.0);
        assert!(b.wait_ms(50.0, 0.0) > 0.0);
    }
}
