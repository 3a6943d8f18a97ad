//! Batches on MySQL, inside the caller's transaction: filling them with their jobs, counting
//! jobs that ended and pushing the callbacks that came due, un-counting retried failures.
//!
//! A batch's counters are changed only under a lock on its row (`FOR UPDATE`), taken in batch
//! id order when several are counted at once, after the settled jobs' rows: the new values and
//! the callbacks to fire are decided from what the lock shows, so each callback is pushed at
//! most once however settlements interleave.

use crate::store::rules::{BatchRow, MAX_FAILED_IDS, batch_step, decode_callback};
use std::collections::{BTreeMap, HashMap};

use sqlx::{FromRow, MySqlConnection, Row};

use crate::store::mysql::{
    ROWS_PER_STATEMENT, in_list,
    queue::push_in,
    retry::TxError,
    rows::{decode_ids, encode_ids},
    sql,
};
use crate::store::{NewJob, PushOutcome, StoreError};

/// A job that ended in a batch (completed or failed for good), to be counted there.
#[derive(Debug)]
pub(in crate::store::mysql) struct Ended {
    pub(in crate::store::mysql) batch_id: String,
    pub(in crate::store::mysql) job_id: String,
    pub(in crate::store::mysql) failed: bool,
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
pub(in crate::store::mysql) async fn count_in_batches(
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
        let query = in_list(
            include_str!("../sql/batch_job_settled_lock.sql"),
            "ids",
            chunk.iter().copied(),
        );
        for row in query.fetch_all(&mut *conn).await? {
            let id: String = row.try_get(0)?;
            let Some(tally) = tallies.get(id.as_str()) else {
                continue;
            };
            let mut failed_ids = decode_ids(&row.try_get::<String, _>(3)?);
            let batch = BatchRow::from_row(&row)?;
            // The batch-callback decision (shared by every store), made in Rust from the row
            // this transaction holds locked: MySQL has no UPDATE ... RETURNING to make it and
            // report it in one statement.
            let step = batch_step(batch, tally.ended, tally.failed.len() as i64);
            let room = MAX_FAILED_IDS.saturating_sub(failed_ids.len());
            failed_ids.extend(tally.failed.iter().take(room).map(|id| id.to_string()));
            sqlx::query(sql(include_str!("../sql/batch_job_settled.sql")))
                .bind(step.pending)
                .bind(step.failed)
                .bind(encode_ids(&failed_ids))
                .bind(step.cancels)
                .bind(step.finished)
                .bind(step.fire.catch)
                .bind(step.fire.finally)
                .bind(step.fire.then)
                .bind(&id)
                .execute(&mut *conn)
                .await?;
            // In this order: catch, finally, then.
            for (fire, column) in [
                (step.fire.catch, 9),
                (step.fire.finally, 10),
                (step.fire.then, 8),
            ] {
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
pub(in crate::store::mysql) async fn uncount_retried(
    conn: &mut MySqlConnection,
    retried: &[(&str, &str)],
) -> Result<(), sqlx::Error> {
    let mut by_batch: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (job_id, batch_id) in retried {
        by_batch.entry(batch_id).or_default().push(job_id);
    }
    let ids: Vec<&str> = by_batch.keys().copied().collect();
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let query = in_list(
            include_str!("../sql/retry_failed_batches.sql"),
            "ids",
            chunk.iter().copied(),
        );
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
            sqlx::query(include_str!("../sql/retry_failed_uncount.sql"))
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
pub(super) async fn add_to_batch_in(
    conn: &mut MySqlConnection,
    batch_id: &str,
    jobs: &[NewJob],
) -> Result<Vec<PushOutcome>, TxError> {
    // Locked until commit: a concurrent prune cannot delete the batch under its new jobs.
    let exists: Option<i32> = sqlx::query_scalar(include_str!("../sql/add_to_batch_lock.sql"))
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
        sqlx::query(include_str!("../sql/add_to_batch.sql"))
            .bind(added as i64)
            .bind(added as i64)
            .bind(batch_id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(outcomes)
}
