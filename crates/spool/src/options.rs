//! Per-job options: tries, backoff, timeout, retry deadline, max exceptions.
//!
//! Options are resolved once, at dispatch, and frozen into the envelope (S-DISP-1): a queued
//! job keeps the options it was dispatched with even if the code changes. A field left `None`
//! falls back to the worker's `--tries` / `--timeout` / `--backoff` when the job runs.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How long to wait before retrying after an error.
///
/// Serialized in the envelope with milliseconds, e.g. `{"list":[1000,5000]}` or
/// `{"exponential":{"base_ms":1000,"max_ms":60000,"jitter":true}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    /// After failed attempt k use element k (1-based); a short list repeats its last element.
    List(#[serde(with = "ms_list")] Vec<Duration>),
    /// `base * 2^(k-1)`, capped at `max`, optionally with full jitter in `[delay/2, delay]`.
    Exponential {
        /// Delay after the first failed attempt.
        #[serde(rename = "base_ms", with = "ms")]
        base: Duration,
        /// The largest delay.
        #[serde(rename = "max_ms", with = "ms")]
        max: Duration,
        /// Spread retries so failing jobs don't come back in lockstep.
        jitter: bool,
    },
}

impl Backoff {
    /// The same delay after every failed attempt.
    pub fn fixed(delay: Duration) -> Self {
        Backoff::List(vec![delay])
    }

    /// Exponential backoff with jitter, from `base`, capped at `max`.
    pub fn exponential(base: Duration, max: Duration) -> Self {
        Backoff::Exponential {
            base,
            max,
            jitter: true,
        }
    }

    /// The delay before the retry that follows failed attempt `attempt` (1-based).
    ///
    /// ```
    /// use std::time::Duration;
    /// use spool::Backoff;
    /// let b = Backoff::List(vec![Duration::from_secs(1), Duration::from_secs(5)]);
    /// assert_eq!(b.delay(1), Duration::from_secs(1));
    /// assert_eq!(b.delay(2), Duration::from_secs(5));
    /// assert_eq!(b.delay(9), Duration::from_secs(5)); // the last element repeats
    /// ```
    pub fn delay(&self, attempt: u32) -> Duration {
        let attempt = attempt.max(1);
        match self {
            Backoff::List(list) => list
                .get(attempt as usize - 1)
                .or(list.last())
                .copied()
                .unwrap_or_default(),
            Backoff::Exponential { base, max, jitter } => {
                let factor = 2u32.saturating_pow(attempt - 1);
                let full = base.saturating_mul(factor).min(*max);
                if *jitter && !full.is_zero() {
                    full / 2 + full.mul_f64(fastrand::f64() / 2.0)
                } else {
                    full
                }
            }
        }
    }
}

/// Options frozen into a job's envelope at dispatch. `None` means "use the worker's default".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobOptions {
    /// Maximum attempts; `0` means unlimited. Ignored when `retry_for` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tries: Option<u32>,
    /// Delay before retrying after an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
    /// Longest a single attempt may run; `0` disables the limit.
    #[serde(
        default,
        rename = "timeout_ms",
        with = "opt_ms",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// Retry (without an attempt limit) until this long after dispatch. The store turns it
    /// into an absolute deadline with its own clock.
    #[serde(
        default,
        rename = "retry_for_ms",
        with = "opt_ms",
        skip_serializing_if = "Option::is_none"
    )]
    pub retry_for: Option<Duration>,
    /// Fail once this many attempts ended in an error or timeout, even if tries remain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_exceptions: Option<u32>,
    /// Fail at the first timeout, whatever tries remain.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fail_on_timeout: bool,
    /// Refuse duplicates of this job while its unique lock is held (S-UNIQ-1..3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique: Option<Unique>,
}

/// A unique job's lock: at most one job holds `key` at a time; dispatching another job with
/// the same key while the lock is held returns "already queued".
///
/// ```
/// use std::time::Duration;
/// use spool::{Unique, UniqueUntil};
/// let lock = Unique::new("invoice:42").for_at_most(Duration::from_secs(3600));
/// assert_eq!(lock.until, UniqueUntil::Done);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unique {
    /// The lock's name; jobs of different types that share a key exclude each other.
    pub key: String,
    /// The lock expires after this long even if still held (a crashed or stuck job cannot
    /// block its key for ever). `None`: held until released.
    #[serde(
        default,
        rename = "for_ms",
        with = "opt_ms",
        skip_serializing_if = "Option::is_none"
    )]
    pub ttl: Option<Duration>,
    /// When the lock is released.
    #[serde(default)]
    pub until: UniqueUntil,
}

impl Unique {
    /// A lock on `key`, held until the job is done.
    pub fn new(key: impl Into<String>) -> Unique {
        Unique {
            key: key.into(),
            ttl: None,
            until: UniqueUntil::Done,
        }
    }

    /// Expire the lock after `ttl` whatever happens.
    pub fn for_at_most(mut self, ttl: Duration) -> Unique {
        self.ttl = Some(ttl);
        self
    }

    /// Release the lock when a worker starts the job (a duplicate may queue while it runs).
    pub fn until_processing(mut self) -> Unique {
        self.until = UniqueUntil::Processing;
        self
    }

    /// Keep the lock until it expires, whatever the job does (periodic ticks, debouncing).
    pub fn until_expiry(mut self, ttl: Duration) -> Unique {
        self.until = UniqueUntil::Expiry;
        self.ttl = Some(ttl);
        self
    }
}

/// When a unique job's lock is released.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UniqueUntil {
    /// When the job completes or fails for good (held across retries and releases).
    #[default]
    Done,
    /// When a worker reserves the job.
    Processing,
    /// Only when its time-to-live runs out.
    Expiry,
}

impl UniqueUntil {
    /// The name stored in the store's lock column.
    pub fn as_str(self) -> &'static str {
        match self {
            UniqueUntil::Done => "done",
            UniqueUntil::Processing => "processing",
            UniqueUntil::Expiry => "expiry",
        }
    }
}

impl JobOptions {
    /// Fills every unset field of `self` from `fallback`.
    pub fn or(mut self, fallback: &JobOptions) -> JobOptions {
        self.tries = self.tries.or(fallback.tries);
        self.backoff = self.backoff.or_else(|| fallback.backoff.clone());
        self.timeout = self.timeout.or(fallback.timeout);
        self.retry_for = self.retry_for.or(fallback.retry_for);
        self.max_exceptions = self.max_exceptions.or(fallback.max_exceptions);
        self.fail_on_timeout |= fallback.fail_on_timeout;
        self.unique = self.unique.or_else(|| fallback.unique.clone());
        self
    }
}

/// Serde helpers: durations as integer milliseconds on the wire.
pub(crate) mod ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

pub(crate) mod opt_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::ms::serialize(d, s),
            None => s.serialize_none(),
        }
    }
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

pub(crate) mod ms_list {
    use serde::{Deserialize, Deserializer, Serializer, ser::SerializeSeq};
    use std::time::Duration;

    pub(crate) fn serialize<S: Serializer>(list: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(list.len()))?;
        for d in list {
            seq.serialize_element(&u64::try_from(d.as_millis()).unwrap_or(u64::MAX))?;
        }
        seq.end()
    }
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        Ok(Vec::<u64>::deserialize(d)?
            .into_iter()
            .map(Duration::from_millis)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_backoff_repeats_last() {
        let b = Backoff::List(vec![Duration::from_secs(30), Duration::from_secs(60)]);
        assert_eq!(b.delay(1), Duration::from_secs(30));
        assert_eq!(b.delay(2), Duration::from_secs(60));
        assert_eq!(b.delay(3), Duration::from_secs(60));
        assert_eq!(Backoff::List(vec![]).delay(1), Duration::ZERO);
    }

    #[test]
    fn exponential_backoff_grows_caps_and_jitters() {
        let exact = Backoff::Exponential {
            base: Duration::from_secs(1),
            max: Duration::from_secs(10),
            jitter: false,
        };
        let delays: Vec<_> = (1..=6).map(|k| exact.delay(k).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 10, 10]);
        let jittered = Backoff::exponential(Duration::from_secs(4), Duration::from_secs(60));
        for _ in 0..100 {
            let d = jittered.delay(2);
            assert!(
                d >= Duration::from_secs(4) && d <= Duration::from_secs(8),
                "{d:?}"
            );
        }
    }

    #[test]
    fn options_round_trip_in_milliseconds() {
        let o = JobOptions {
            tries: Some(3),
            backoff: Some(Backoff::List(vec![Duration::from_secs(1)])),
            timeout: Some(Duration::from_millis(1500)),
            ..Default::default()
        };
        let json = serde_json::to_string(&o).unwrap();
        assert_eq!(
            json,
            r#"{"tries":3,"backoff":{"list":[1000]},"timeout_ms":1500}"#
        );
        assert_eq!(serde_json::from_str::<JobOptions>(&json).unwrap(), o);
    }

    #[test]
    fn or_fills_only_unset_fields() {
        let job = JobOptions {
            tries: Some(5),
            ..Default::default()
        };
        let worker = JobOptions {
            tries: Some(1),
            timeout: Some(Duration::from_secs(60)),
            ..Default::default()
        };
        let merged = job.or(&worker);
        assert_eq!(merged.tries, Some(5));
        assert_eq!(merged.timeout, Some(Duration::from_secs(60)));
    }
}
