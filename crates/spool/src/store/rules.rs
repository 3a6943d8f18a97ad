//! Rules every store applies, written once.
//!
//! A store applies these where its atomicity allows: the SQL stores and SQLite call them from
//! Rust inside the transaction that settles the job. Where a rule must be decided inside one
//! statement or one Lua script (PostgreSQL's settle-and-count statement, every Redis script),
//! the store restates it there, with a comment pointing here.

/// How many failed job ids a batch record keeps (the first ones). Each failure rewrites the
/// list, so an unbounded list made a batch with many failures quadratic; the failed store
/// keeps every record with its batch id, which is what `retry_failed(Batch)` uses.
#[cfg_attr(not(feature = "mysql"), allow(dead_code))] // the others restate it in SQL or Lua
pub(crate) const MAX_FAILED_IDS: usize = 1000;

use std::{borrow::Cow, time::Duration};

use serde::{Deserialize, Serialize};

use super::{JobState, NewJob, Settlement, StoreError, StoreResult};
use crate::duration::millis;

/// Longest delay or retry window a time is offset by (about 100 years): larger ones mean
/// "practically never" and would otherwise overflow BIGINT milliseconds or lose precision as
/// Lua numbers.
pub(crate) const MAX_OFFSET_MS: i64 = 100 * 365 * 24 * 3600 * 1000;

/// A delay as milliseconds to add to the store's clock: saturating, and capped at
/// [`MAX_OFFSET_MS`], so no input can overflow a stored time.
pub(crate) fn offset_ms(d: Duration) -> i64 {
    millis(d).min(MAX_OFFSET_MS)
}

/// Settlements as every store keeps them: their error, causes and result without NUL bytes,
/// which PostgreSQL refuses in text and JSON (and a refused settlement would be resent forever).
/// Borrowed when none holds one, the usual case.
pub(crate) fn storable(settlements: &[Settlement]) -> Cow<'_, [Settlement]> {
    let has_nul = |t: &str| t.contains('\0');
    let dirty = settlements.iter().any(|s| match s {
        Settlement::Complete { result, .. } => result.as_deref().is_some_and(has_nul),
        Settlement::Release { error, .. } => error.as_deref().is_some_and(has_nul),
        Settlement::Fail { error, causes, .. } => {
            has_nul(error) || causes.iter().any(|c| has_nul(c))
        }
    });
    if !dirty {
        return Cow::Borrowed(settlements);
    }
    let clean = |t: &mut String| {
        if has_nul(t) {
            *t = t.replace('\0', "");
        }
    };
    let mut owned = settlements.to_vec();
    for s in &mut owned {
        match s {
            Settlement::Complete { result, .. } => result.iter_mut().for_each(clean),
            Settlement::Release { error, .. } => error.iter_mut().for_each(clean),
            Settlement::Fail { error, causes, .. } => {
                clean(error);
                causes.iter_mut().for_each(clean);
            }
        }
    }
    Cow::Owned(owned)
}

/// A count read from the store as an unsigned number (a negative value reads as 0).
pub(crate) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Refuses a schema (or key layout) at version `found` that a newer build wrote: this build
/// supports up to `supported`.
#[cfg_attr(
    not(any(feature = "postgres", feature = "mysql", feature = "redis")),
    allow(dead_code)
)]
pub(crate) fn check_schema_version(found: i64, supported: i64) -> StoreResult<()> {
    if found > supported {
        return Err(StoreError::SchemaTooNew { found, supported });
    }
    Ok(())
}

/// Whether a store can be used as it is by a command that does not migrate: `found` is the
/// schema (or key layout) version recorded at the location, `None` when nothing of Spool's is
/// there; `location` names it (redacted) for the error.
pub(crate) fn check_existing_schema(
    found: Option<i64>,
    supported: i64,
    location: impl FnOnce() -> String,
) -> StoreResult<()> {
    match found {
        None | Some(0) => Err(StoreError::NoStore(location())),
        Some(found) if found > supported => Err(StoreError::SchemaTooNew { found, supported }),
        Some(found) if found < supported => Err(StoreError::SchemaTooOld { found, supported }),
        Some(_) => Ok(()),
    }
}

/// Milliseconds read from the store as a duration (a negative value reads as zero).
pub(crate) fn duration_ms(ms: i64) -> Duration {
    Duration::from_millis(count(ms))
}

/// Whether a completion hands its batch membership on instead of being counted: a chain link
/// in a batch whose next link (a follow-up in the same batch) carries the membership, so the
/// batch counts the chain once, at its last link. Every store applies this rule.
pub fn hands_on_batch_membership(batch_id: &str, follow_ups: &[NewJob]) -> bool {
    follow_ups
        .iter()
        .any(|f| f.batch_id.as_deref() == Some(batch_id))
}

/// Whether a job whose worker was lost, after `recoveries` earlier losses, fails as a poison
/// pill instead of going back to its queue: at the `max_recoveries`-th loss.
#[cfg_attr(not(any(feature = "mysql", feature = "sqlite")), allow(dead_code))]
pub(crate) fn is_poison_pill(recoveries: i64, max_recoveries: u32) -> bool {
    recoveries + 1 >= i64::from(max_recoveries)
}

/// A job's state as listings show it: reserved while a worker holds it, else delayed until it
/// comes due, else pending.
pub(crate) fn job_state(reserved: bool, available_at: i64, now: i64) -> JobState {
    match (reserved, available_at > now) {
        (true, _) => JobState::Reserved,
        (false, true) => JobState::Delayed,
        (false, false) => JobState::Pending,
    }
}

/// A batch's three callbacks, one flag each: which were pushed already, or which to push now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "mysql", derive(sqlx::FromRow))]
pub(crate) struct Callbacks {
    /// On the first failure.
    #[cfg_attr(feature = "mysql", sqlx(rename = "catch_fired"))]
    pub(crate) catch: bool,
    /// When no job is pending.
    #[cfg_attr(feature = "mysql", sqlx(rename = "finally_fired"))]
    pub(crate) finally: bool,
    /// When no job is pending and none failed.
    #[cfg_attr(feature = "mysql", sqlx(rename = "then_fired"))]
    pub(crate) then: bool,
}

/// A batch's row as the settling transaction read (and locked) it.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "mysql", derive(sqlx::FromRow))]
#[cfg_attr(not(any(feature = "mysql", feature = "sqlite")), allow(dead_code))]
pub(crate) struct BatchRow {
    /// Jobs not yet ended, and jobs that failed so far.
    pub(crate) pending: i64,
    pub(crate) failed: i64,
    /// Whether a failure leaves the batch running.
    pub(crate) allow_failures: bool,
    /// The callbacks already pushed.
    #[cfg_attr(feature = "mysql", sqlx(flatten))]
    pub(crate) fired: Callbacks,
}

/// What settling some of a batch's jobs does to the batch: the new counters, whether it is
/// cancelled or finished, and which callbacks to push now (in the order catch, finally, then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(any(feature = "mysql", feature = "sqlite")), allow(dead_code))]
pub(crate) struct BatchStep {
    /// Jobs still pending afterwards (never below 0), and failed jobs afterwards.
    pub(crate) pending: i64,
    pub(crate) failed: i64,
    /// These failures cancel the batch (unless it allows failures); the batch is finished.
    pub(crate) cancels: bool,
    pub(crate) finished: bool,
    /// The callbacks to push now.
    pub(crate) fire: Callbacks,
}

/// The batch-callback decision: `ended` of the batch's jobs ended, `failures` of them failed.
/// `catch` fires on the first failure, `finally` when no job is pending, `then` when none is
/// pending and none ever failed; each at most once.
#[cfg_attr(not(any(feature = "mysql", feature = "sqlite")), allow(dead_code))]
pub(crate) fn batch_step(row: BatchRow, ended: i64, failures: i64) -> BatchStep {
    let left = row.pending - ended;
    BatchStep {
        pending: left.max(0),
        failed: row.failed + failures,
        cancels: failures > 0 && !row.allow_failures,
        finished: left <= 0,
        fire: Callbacks {
            catch: failures > 0 && !row.fired.catch,
            finally: left <= 0 && !row.fired.finally,
            then: left <= 0 && row.failed + failures == 0 && !row.fired.then,
        },
    }
}

/// A batch callback as the SQL stores keep it in a JSON column: pushed as is (no unique lock,
/// no batch).
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(not(any(feature = "mysql", feature = "postgres")), allow(dead_code))]
struct StoredCallback {
    id: String,
    queue: String,
    job: String,
    envelope: String,
    delay_ms: i64,
    retry_for_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String>,
}

/// Encodes a batch callback for its column.
#[cfg_attr(not(any(feature = "mysql", feature = "postgres")), allow(dead_code))]
pub(crate) fn encode_callback(job: Option<&NewJob>) -> Option<String> {
    job.map(|j| {
        serde_json::to_string(&StoredCallback {
            id: j.id.clone(),
            queue: j.queue.clone(),
            job: j.job.clone(),
            envelope: j.envelope.clone(),
            delay_ms: offset_ms(j.delay),
            retry_for_ms: j.retry_for.map(offset_ms),
            tags: j.tags.clone(),
        })
        .expect("plain data encodes")
    })
}

/// The job a stored callback pushes; `None` if the column holds something else (it is written
/// only by [`encode_callback`], so that would be a damaged row: nothing is pushed).
#[cfg_attr(not(feature = "mysql"), allow(dead_code))]
pub(crate) fn decode_callback(json: &str) -> Option<NewJob> {
    let c: StoredCallback = serde_json::from_str(json).ok()?;
    Some(NewJob {
        id: c.id,
        queue: c.queue,
        job: c.job,
        envelope: c.envelope,
        delay: duration_ms(c.delay_ms),
        retry_for: c.retry_for_ms.map(duration_ms),
        batch_id: None,
        unique: None,
        tags: c.tags,
        // Checked when the batch was dispatched.
        max_payload: usize::MAX,
    })
}

/// How many of the live workers' queue lists (JSON arrays, as the SQL stores keep them) share
/// a queue with `mine` (`work --max-workers`). A list that cannot be read counts as sharing:
/// the cap errs on the side of starting fewer workers.
pub(crate) fn workers_sharing<'a>(
    queue_lists: impl IntoIterator<Item = &'a str>,
    mine: &[String],
) -> usize {
    queue_lists
        .into_iter()
        .filter(|json| {
            serde_json::from_str::<Vec<String>>(json)
                .map_or(true, |theirs| theirs.iter().any(|q| mine.contains(q)))
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pending: i64, failed: i64) -> BatchRow {
        BatchRow {
            pending,
            failed,
            allow_failures: false,
            fired: Callbacks::default(),
        }
    }

    #[test]
    fn the_last_success_fires_then_and_finally() {
        let step = batch_step(row(2, 0), 2, 0);
        assert_eq!(
            (
                step.pending,
                step.finished,
                step.fire.then,
                step.fire.finally,
                step.fire.catch
            ),
            (0, true, true, true, false)
        );
    }

    #[test]
    fn a_failure_fires_catch_once_and_never_then() {
        let step = batch_step(row(3, 0), 1, 1);
        assert!(step.fire.catch && step.cancels && !step.finished && !step.fire.then);
        let later = BatchRow {
            fired: Callbacks {
                catch: true,
                ..Callbacks::default()
            },
            ..row(2, 1)
        };
        let step = batch_step(later, 2, 0);
        assert!(!step.fire.catch && !step.fire.then && step.fire.finally && step.finished);
    }

    #[test]
    fn allowed_failures_do_not_cancel() {
        let step = batch_step(
            BatchRow {
                allow_failures: true,
                ..row(2, 0)
            },
            1,
            1,
        );
        assert!(!step.cancels && step.fire.catch);
    }

    #[test]
    fn nul_bytes_are_stripped_from_settlements() {
        let plain = [Settlement::fail("j", 1, "boom".into(), vec![])];
        assert!(matches!(storable(&plain), Cow::Borrowed(_)));
        let dirty = [Settlement::fail("j", 1, "x\0y".into(), vec!["c\0".into()])];
        let Settlement::Fail { error, causes, .. } = &storable(&dirty)[0] else {
            unreachable!()
        };
        assert_eq!(
            (error.as_str(), causes.as_slice()),
            ("xy", &["c".to_string()][..])
        );
    }

    #[test]
    fn poison_pills_fail_at_the_last_allowed_loss() {
        assert!(!is_poison_pill(1, 3));
        assert!(is_poison_pill(2, 3));
    }

    #[test]
    fn offsets_are_capped_and_callbacks_round_trip() {
        assert_eq!(offset_ms(Duration::MAX), MAX_OFFSET_MS);
        let envelope = crate::Envelope::new("noop", "then", serde_json::json!({}));
        let mut job = NewJob::new(&envelope, Duration::from_millis(1500)).expect("encodes");
        job.retry_for = Some(Duration::from_secs(60));
        let back = decode_callback(&encode_callback(Some(&job)).unwrap()).unwrap();
        assert_eq!(
            (back.id, back.delay, back.retry_for),
            (job.id, job.delay, job.retry_for)
        );
        assert!(decode_callback("[1, 2]").is_none());
    }
}
