//! Batches on MySQL: creating and filling them with their jobs in one transaction, counting
//! jobs that ended and pushing the callbacks that came due, un-counting retried failures,
//! listing, cancelling and pruning.
//!
//! A batch's counters are changed only under a lock on its row (`FOR UPDATE`), taken in batch
//! id order when several are counted at once, after the settled jobs' rows: the new values and
//! the callbacks to fire are decided from what the lock shows, so each callback is pushed at
//! most once however settlements interleave.

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use sqlx::{MySqlConnection, Row};

use super::{
    MysqlStore,
    push::push_in,
    retry::{Begin, TxError, idempotent, in_transaction},
    sql::{MAX_OFFSET_MS, ROWS_PER_STATEMENT, list, sql},
};
use crate::{
    duration::millis,
    store::{
        BatchInfo, BatchPrune, NewBatch, NewJob, PushOutcome, StoreError, StoreResult, sql::rows,
    },
};

/// A job that ended in a batch (completed or failed for good), to be counted there.
#[derive(Debug)]
pub(super) struct Ended {
    pub(super) batch_id: String,
    pub(super) job_id: String,
    pub(super) failed: bool,
}

/// A batch callback as stored in its column (JSON): pushed as is, with no lock and no batch.
#[derive(Debug, Serialize, Deserialize)]
struct Callback {
    id: String,
    queue: String,
    job: String,
    envelope: String,
    delay_ms: i64,
    retry_for_ms: Option<i64>,
}

fn encode_callback(job: Option<&NewJob>) -> Option<String> {
    job.map(|j| {
        serde_json::to_string(&Callback {
            id: j.id.clone(),
            queue: j.queue.clone(),
            job: j.job.clone(),
            envelope: j.envelope.clone(),
            delay_ms: millis(j.delay).min(MAX_OFFSET_MS),
            retry_for_ms: j.retry_for.map(|w| millis(w).min(MAX_OFFSET_MS)),
        })
        .expect("plain data encodes")
    })
}

/// The job a stored callback pushes; `None` if the column holds something else (it is written
/// only by [`encode_callback`], so that would be a damaged row: nothing is pushed).
fn decode_callback(json: &str) -> Option<NewJob> {
    let c: Callback = serde_json::from_str(json).ok()?;
    Some(NewJob {
        id: c.id,
        queue: c.queue,
        job: c.job,
        envelope: c.envelope,
        delay: Duration::from_millis(u64::try_from(c.delay_ms).unwrap_or(0)),
        retry_for: c
            .retry_for_ms
            .map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
        batch_id: None,
        unique: None,
    })
}

/// The failed ids as stored: a JSON array of strings.
fn decode_ids(json: &str) -> Vec<String> {
    serde_json::from_str(json).unwrap_or_default()
}

fn encode_ids(ids: &[String]) -> String {
    serde_json::to_string(ids).expect("strings encode")
}

/// How many jobs ended in one batch, and which of them failed (in settlement order).
#[derive(Default)]
struct Tally<'a> {
    ended: i64,
    failed: Vec<&'a str>,
}

/// Counts jobs that ended in their batches, inside the caller's transaction, and pushes the
/// callbacks that came due, each at most once: `catch` at the first failure, `finally` when no
/// job is pending, `then` when no job is pending and none failed. Without `allow_failures` the
/// first failure cancels the batch. Returns how many callbacks were pushed.
///
/// Counting several jobs of a batch at once is the same as counting them one by one: `pending`
/// reaches zero only with the last of them, when every failure among them is counted, so the
/// same callbacks come due either way. A pruned batch has no row: its jobs are not counted.
pub(super) async fn count_in_batches(
    conn: &mut MySqlConnection,
    ended: &[Ended],
) -> Result<u64, sqlx::Error> {
    if ended.is_empty() {
        return Ok(0);
    }
    let mut tallies: BTreeMap<&str, Tally<'_>> = BTreeMap::new();
    for e in ended {
        let tally = tallies.entry(e.batch_id.as_str()).or_default();
        tally.ended += 1;
        if e.failed {
            tally.failed.push(e.job_id.as_str());
        }
    }
    let ids: Vec<&str> = tallies.keys().copied().collect();
    let mut due = Vec::new();
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let statement = format!(
            "SELECT id, pending, failed, failed_ids, allow_failures, then_fired, catch_fired,
                    finally_fired, then_job, catch_job, finally_job
             FROM spool_batches WHERE id IN ({}) ORDER BY id FOR UPDATE",
            list(chunk.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(statement));
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut *conn).await? {
            let id: String = row.try_get(0)?;
            let Some(tally) = tallies.get(id.as_str()) else {
                continue;
            };
            let pending: i64 = row.try_get(1)?;
            let failed: i64 = row.try_get(2)?;
            let mut failed_ids = decode_ids(&row.try_get::<String, _>(3)?);
            let allow_failures: bool = row.try_get(4)?;
            let (then_fired, catch_fired, finally_fired): (bool, bool, bool) =
                (row.try_get(5)?, row.try_get(6)?, row.try_get(7)?);
            let failures = tally.failed.len() as i64;
            let left = pending - tally.ended;
            let fire_catch = failures > 0 && !catch_fired;
            let fire_finally = left <= 0 && !finally_fired;
            let fire_then = left <= 0 && failed + failures == 0 && !then_fired;
            failed_ids.extend(tally.failed.iter().map(|id| id.to_string()));
            sqlx::query(sql("UPDATE spool_batches SET
                     pending = ?, failed = ?, failed_ids = ?,
                     cancelled_at = CASE WHEN ? THEN COALESCE(cancelled_at, {now})
                                         ELSE cancelled_at END,
                     finished_at = CASE WHEN ? THEN COALESCE(finished_at, {now})
                                        ELSE finished_at END,
                     catch_fired = catch_fired OR ?, finally_fired = finally_fired OR ?,
                     then_fired = then_fired OR ?
                 WHERE id = ?"))
            .bind(left.max(0))
            .bind(failed + failures)
            .bind(encode_ids(&failed_ids))
            .bind(failures > 0 && !allow_failures)
            .bind(left <= 0)
            .bind(fire_catch)
            .bind(fire_finally)
            .bind(fire_then)
            .bind(&id)
            .execute(&mut *conn)
            .await?;
            // In this order: catch, finally, then.
            for (fire, column) in [(fire_catch, 9), (fire_finally, 10), (fire_then, 8)] {
                if fire {
                    let job: Option<String> = row.try_get(column)?;
                    due.extend(job.as_deref().and_then(decode_callback));
                }
            }
        }
    }
    let pushed = push_in(conn, &due, None).await?;
    Ok(pushed.iter().filter(|o| **o == PushOutcome::Queued).count() as u64)
}

/// Puts retried failed jobs (`(job id, batch id)` pairs) back to pending in their batches: no
/// longer counted as failed, and the cancellation and end their failure caused are lifted.
pub(super) async fn uncount_retried(
    conn: &mut MySqlConnection,
    retried: &[(&str, &str)],
) -> Result<(), sqlx::Error> {
    let mut by_batch: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (job_id, batch_id) in retried {
        by_batch.entry(batch_id).or_default().push(job_id);
    }
    let ids: Vec<&str> = by_batch.keys().copied().collect();
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let statement = format!(
            "SELECT id, failed_ids FROM spool_batches WHERE id IN ({}) ORDER BY id FOR UPDATE",
            list(chunk.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(statement));
        for id in chunk {
            query = query.bind(*id);
        }
        let found: HashMap<String, String> = query
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()?;
        for id in chunk {
            let (Some(jobs), Some(failed_ids)) = (by_batch.get(id), found.get(*id)) else {
                continue;
            };
            let left: Vec<String> = decode_ids(failed_ids)
                .into_iter()
                .filter(|f| !jobs.contains(&f.as_str()))
                .collect();
            let n = jobs.len() as i64;
            sqlx::query(
                "UPDATE spool_batches
                 SET pending = pending + ?, failed = GREATEST(failed - ?, 0), failed_ids = ?,
                     cancelled_at = NULL, finished_at = NULL
                 WHERE id = ?",
            )
            .bind(n)
            .bind(n)
            .bind(encode_ids(&left))
            .bind(*id)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

/// Pushes jobs into a batch, inside the caller's transaction; only the jobs actually stored
/// are counted, and a finished batch that gains jobs is open again.
async fn add_to_batch_in(
    conn: &mut MySqlConnection,
    batch_id: &str,
    jobs: &[NewJob],
) -> Result<Vec<PushOutcome>, TxError> {
    // Locked until commit: a concurrent prune cannot delete the batch under its new jobs.
    let exists: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM spool_batches WHERE id = ? FOR UPDATE")
            .bind(batch_id)
            .fetch_optional(&mut *conn)
            .await?;
    if exists.is_none() {
        return Err(TxError::Store(StoreError::Invalid(format!(
            "no batch with id {batch_id}"
        ))));
    }
    let outcomes = push_in(conn, jobs, Some(batch_id)).await?;
    let added = outcomes
        .iter()
        .filter(|o| **o == PushOutcome::Queued)
        .count();
    if added > 0 {
        sqlx::query(
            "UPDATE spool_batches
             SET total = total + ?, pending = pending + ?, finished_at = NULL
             WHERE id = ?",
        )
        .bind(added as i64)
        .bind(added as i64)
        .bind(batch_id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(outcomes)
}

/// Decodes a row of [`rows::BATCH_COLUMNS`], whose failed ids are a JSON array.
fn batch_info(row: &sqlx::mysql::MySqlRow) -> Result<BatchInfo, sqlx::Error> {
    let failed_ids: String = row.try_get(5)?;
    rows::batch_info_with(row, decode_ids(&failed_ids))
}

impl MysqlStore {
    /// Creates a batch and pushes its jobs in one transaction.
    pub(super) async fn create_batch_tx(
        &self,
        batch: &NewBatch,
        jobs: &[NewJob],
    ) -> StoreResult<Vec<PushOutcome>> {
        let outcomes = in_transaction!(&self.pool, Begin::Write, |conn| {
            // A concurrent creation of the same id makes the insert fail with a duplicate key;
            // the transaction then runs again and finds the batch here.
            let exists: Option<i32> =
                sqlx::query_scalar("SELECT 1 FROM spool_batches WHERE id = ?")
                    .bind(&batch.id)
                    .fetch_optional(&mut *conn)
                    .await?;
            if exists.is_some() {
                return Err(TxError::Store(StoreError::Invalid(format!(
                    "a batch with id {} exists already",
                    batch.id
                ))));
            }
            sqlx::query(sql(
                "INSERT INTO spool_batches (id, name, total, pending, failed_ids, allow_failures,
                                            then_job, catch_job, finally_job, created_at)
                 VALUES (?, ?, 0, 0, '[]', ?, ?, ?, ?, {now})",
            ))
            .bind(&batch.id)
            .bind(&batch.name)
            .bind(batch.allow_failures)
            .bind(encode_callback(batch.then.as_ref()))
            .bind(encode_callback(batch.catch.as_ref()))
            .bind(encode_callback(batch.finally.as_ref()))
            .execute(&mut *conn)
            .await?;
            add_to_batch_in(conn, &batch.id, jobs).await
        })?;
        self.woken_if_queued(&outcomes);
        Ok(outcomes)
    }

    /// Adds jobs to a batch in one transaction.
    pub(super) async fn add_to_batch_tx(
        &self,
        batch_id: &str,
        jobs: &[NewJob],
    ) -> StoreResult<Vec<PushOutcome>> {
        let outcomes = in_transaction!(&self.pool, Begin::Write, |conn| {
            add_to_batch_in(conn, batch_id, jobs).await
        })?;
        self.woken_if_queued(&outcomes);
        Ok(outcomes)
    }

    /// One batch.
    pub(super) async fn one_batch(&self, id: &str) -> StoreResult<Option<BatchInfo>> {
        idempotent!(&self.pool, |conn| {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {} FROM spool_batches WHERE id = ?",
                rows::BATCH_COLUMNS
            )))
            .bind(id)
            .fetch_optional(conn)
            .await?;
            row.as_ref().map(batch_info).transpose()
        })
    }

    /// The newest `limit` batches.
    pub(super) async fn list_batches(&self, limit: u32) -> StoreResult<Vec<BatchInfo>> {
        idempotent!(&self.pool, |conn| {
            let found = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {} FROM spool_batches ORDER BY created_at DESC, id LIMIT ?",
                rows::BATCH_COLUMNS
            )))
            .bind(i64::from(limit))
            .fetch_all(conn)
            .await?;
            found.iter().map(batch_info).collect()
        })
    }

    /// Marks a batch cancelled; false if there is none or it already was.
    pub(super) async fn cancel_batch_now(&self, id: &str) -> StoreResult<bool> {
        let n = in_transaction!(&self.pool, Begin::Write, |conn| {
            let n = sqlx::query(sql(
                "UPDATE spool_batches SET cancelled_at = {now} WHERE id = ? AND cancelled_at IS NULL",
            ))
            .bind(id)
            .execute(conn)
            .await?
            .rows_affected();
            Ok::<_, TxError>(n)
        })?;
        Ok(n > 0)
    }

    /// Deletes the batch records `prune` selects.
    pub(super) async fn prune_batches_now(&self, prune: BatchPrune) -> StoreResult<u64> {
        let age = |d: Option<Duration>| d.map(|d| millis(d).min(MAX_OFFSET_MS));
        let (finished, unfinished, cancelled) = (
            age(prune.finished),
            age(prune.unfinished),
            age(prune.cancelled),
        );
        in_transaction!(&self.pool, Begin::Write, |conn| {
            let n = sqlx::query(sql(
                "DELETE FROM spool_batches
                 WHERE (? IS NOT NULL AND finished_at IS NOT NULL AND finished_at < {now} - ?)
                    OR (? IS NOT NULL AND finished_at IS NULL AND created_at < {now} - ?)
                    OR (? IS NOT NULL AND cancelled_at IS NOT NULL AND created_at < {now} - ?)",
            ))
            .bind(finished)
            .bind(finished)
            .bind(unfinished)
            .bind(unfinished)
            .bind(cancelled)
            .bind(cancelled)
            .execute(conn)
            .await?
            .rows_affected();
            Ok::<_, TxError>(n)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callbacks_round_trip() {
        let envelope = crate::Envelope::new("noop", "then", serde_json::json!({}));
        let mut job = NewJob::new(&envelope, Duration::from_millis(1500)).expect("encodes");
        job.retry_for = Some(Duration::from_secs(60));
        let back = decode_callback(&encode_callback(Some(&job)).unwrap()).unwrap();
        assert_eq!(
            (back.id, back.queue, back.job, back.envelope),
            (job.id, job.queue, job.job, job.envelope)
        );
        assert_eq!(
            (back.delay, back.retry_for),
            (job.delay, Some(Duration::from_secs(60)))
        );
        assert!(decode_callback("[1, 2]").is_none());
        assert_eq!(encode_callback(None), None);
    }

    #[test]
    fn failed_ids_are_a_json_array() {
        let ids = vec!["a".to_string(), "b\"c".to_string()];
        assert_eq!(decode_ids(&encode_ids(&ids)), ids);
        assert!(decode_ids("not json").is_empty());
    }
}
