//! Workflow state on SQLite: unique locks taken with the push, the side effects of settling a
//! job (lock and slot release, batch counters and callbacks, results, follow-ups), batches,
//! limiters and concurrency slots. Every function runs inside the caller's transaction.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::{
    duration::millis,
    store::{
        BatchInfo, CompletedJob, LimitMode, LimitState, NewBatch, NewJob, PushOutcome, SlotRequest,
        StoreResult, hands_on_batch_membership, rfc3339_ms,
    },
};

/// Pushes jobs, taking each one's unique lock in the same transaction: a job whose lock is
/// held (and not expired) is not stored and reported as already queued.
pub(crate) fn push_in(
    conn: &Connection,
    jobs: &[NewJob],
    now: i64,
) -> StoreResult<Vec<PushOutcome>> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO spool_jobs (id, queue, job, envelope, available_at, retry_until, created_at,
                                 batch_id, unique_key)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (id) DO NOTHING",
    )?;
    let mut outcomes = Vec::with_capacity(jobs.len());
    for job in jobs {
        let mut unique_key = None;
        if let Some(unique) = &job.unique {
            conn.prepare_cached(
                "DELETE FROM spool_locks WHERE key = ?1 AND expires_at IS NOT NULL AND expires_at <= ?2",
            )?
            .execute(params![unique.key, now])?;
            let locked = conn
                .prepare_cached(
                    "INSERT INTO spool_locks (key, owner, until, expires_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (key) DO NOTHING",
                )?
                .execute(params![
                    unique.key,
                    job.id,
                    unique.until.as_str(),
                    unique.ttl.map(|ttl| now + millis(ttl))
                ])?;
            if locked == 0 {
                outcomes.push(PushOutcome::AlreadyQueued);
                continue;
            }
            unique_key = Some(unique.key.clone());
        }
        let n = insert.execute(params![
            job.id,
            job.queue,
            job.job,
            job.envelope,
            now + millis(job.delay),
            job.retry_for.map(|d| now + millis(d)),
            now,
            job.batch_id,
            unique_key
        ])?;
        // A repeated id within one batch is already queued after its first row.
        outcomes.push(if n > 0 {
            PushOutcome::Queued
        } else {
            PushOutcome::AlreadyQueued
        });
    }
    Ok(outcomes)
}

/// What a settled job's row said about its side effects.
#[derive(Debug)]
pub(crate) struct Settled {
    pub(crate) id: String,
    pub(crate) queue: String,
    pub(crate) job: String,
    pub(crate) batch_id: Option<String>,
    pub(crate) unique_key: Option<String>,
}

/// Columns to `RETURNING` from a settling `DELETE`, decoded by [`settled_row`].
pub(crate) const SETTLED_COLUMNS: &str = "id, queue, job, batch_id, unique_key";

pub(crate) fn settled_row(row: &Row<'_>) -> rusqlite::Result<Settled> {
    Ok(Settled {
        id: row.get(0)?,
        queue: row.get(1)?,
        job: row.get(2)?,
        batch_id: row.get(3)?,
        unique_key: row.get(4)?,
    })
}

/// How a job ended, for its side effects.
pub(crate) enum End<'a> {
    Completed { result: Option<&'a str> },
    Failed,
}

/// Applies a settled job's side effects: its lock and slots are released, its batch counted,
/// its result kept, its follow-ups pushed.
pub(crate) fn after_settle(
    conn: &Connection,
    row: &Settled,
    end: End<'_>,
    follow_ups: &[NewJob],
    now: i64,
) -> StoreResult<()> {
    if let Some(key) = &row.unique_key {
        conn.prepare_cached(
            "DELETE FROM spool_locks WHERE key = ?1 AND owner = ?2 AND until = 'done'",
        )?
        .execute(params![key, row.id])?;
    }
    release_slots(conn, &row.id)?;
    let failed = matches!(end, End::Failed);
    if let End::Completed {
        result: Some(result),
    } = end
    {
        conn.prepare_cached(
            "INSERT INTO spool_results (id, queue, job, batch_id, result, completed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (id) DO UPDATE SET result = excluded.result, completed_at = excluded.completed_at",
        )?
        .execute(params![row.id, row.queue, row.job, row.batch_id, result, now])?;
    }
    if let Some(batch_id) = &row.batch_id
        && (failed || !hands_on_batch_membership(batch_id, follow_ups))
    {
        count_in_batch(conn, batch_id, &row.id, failed, now)?;
    }
    if !follow_ups.is_empty() {
        push_in(conn, follow_ups, now)?;
    }
    Ok(())
}

/// Frees every concurrency slot a job holds.
pub(crate) fn release_slots(conn: &Connection, job_id: &str) -> StoreResult<()> {
    conn.prepare_cached("DELETE FROM spool_slots WHERE holder = ?1")?
        .execute([job_id])?;
    Ok(())
}

/// Releases the "unique until processing" lock of a job a worker just reserved.
pub(crate) fn release_processing_lock(
    conn: &Connection,
    job_id: &str,
    key: &str,
) -> StoreResult<()> {
    conn.prepare_cached(
        "DELETE FROM spool_locks WHERE key = ?1 AND owner = ?2 AND until = 'processing'",
    )?
    .execute(params![key, job_id])?;
    Ok(())
}

/// Releases the locks of queued jobs an operator deletes (not the ones held until expiry).
pub(crate) fn release_locks_of(conn: &Connection, job_id: &str) -> StoreResult<()> {
    conn.prepare_cached("DELETE FROM spool_locks WHERE owner = ?1 AND until <> 'expiry'")?
        .execute([job_id])?;
    Ok(())
}

/// Counts a finished job in its batch and pushes the callbacks that became due, each once:
/// `catch` at the first failure, `finally` when no job is pending, `then` when no job is
/// pending and none failed. Without `allow_failures` the first failure cancels the batch.
fn count_in_batch(
    conn: &Connection,
    batch_id: &str,
    job_id: &str,
    failed: bool,
    now: i64,
) -> StoreResult<()> {
    let state = conn
        .prepare_cached(
            "UPDATE spool_batches SET
                 pending = MAX(pending - 1, 0),
                 failed = failed + ?2,
                 failed_ids = CASE WHEN ?2 = 1 THEN json_insert(failed_ids, '$[#]', ?3) ELSE failed_ids END,
                 cancelled_at = CASE WHEN ?2 = 1 AND allow_failures = 0 THEN COALESCE(cancelled_at, ?4)
                                     ELSE cancelled_at END,
                 finished_at = CASE WHEN pending - 1 <= 0 THEN COALESCE(finished_at, ?4) ELSE finished_at END
             WHERE id = ?1
             RETURNING pending, failed, then_fired, catch_fired, finally_fired",
        )?
        .query_row(params![batch_id, failed as i64, job_id, now], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, bool>(2)?,
                row.get::<_, bool>(3)?,
                row.get::<_, bool>(4)?,
            ))
        })
        .optional()?;
    let Some((pending, failed_count, then_fired, catch_fired, finally_fired)) = state else {
        return Ok(()); // the batch was pruned: nothing to count
    };
    if failed && !catch_fired {
        fire(conn, batch_id, "catch", now)?;
    }
    if pending == 0 && !finally_fired {
        fire(conn, batch_id, "finally", now)?;
    }
    if pending == 0 && failed_count == 0 && !then_fired {
        fire(conn, batch_id, "then", now)?;
    }
    Ok(())
}

/// Pushes a batch callback (`then`, `catch` or `finally`) and marks it fired.
fn fire(conn: &Connection, batch_id: &str, which: &str, now: i64) -> StoreResult<()> {
    let sql =
        format!("UPDATE spool_batches SET {which}_fired = 1 WHERE id = ?1 RETURNING {which}_job");
    let job: Option<String> = conn
        .prepare_cached(&sql)?
        .query_row([batch_id], |row| row.get(0))?;
    if let Some(job) = job.and_then(|json| decode_callback(&json)) {
        push_in(conn, &[job], now)?;
    }
    Ok(())
}

/// A callback job as stored: `[id, queue, job, envelope]`.
fn encode_callback(job: &Option<NewJob>) -> Option<String> {
    job.as_ref()
        .map(|j| serde_json::json!([j.id, j.queue, j.job, j.envelope]).to_string())
}

fn decode_callback(json: &str) -> Option<NewJob> {
    let (id, queue, job, envelope): (String, String, String, String) =
        serde_json::from_str(json).ok()?;
    Some(NewJob {
        id,
        queue,
        job,
        envelope,
        delay: Duration::ZERO,
        retry_for: None,
        batch_id: None,
        unique: None,
    })
}

/// Creates a batch row and pushes its jobs.
pub(crate) fn create_batch(
    conn: &Connection,
    batch: &NewBatch,
    jobs: &[NewJob],
    now: i64,
) -> StoreResult<Vec<PushOutcome>> {
    conn.prepare_cached(
        "INSERT INTO spool_batches (id, name, total, pending, allow_failures, then_job, catch_job,
                                    finally_job, created_at)
         VALUES (?1, ?2, 0, 0, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        batch.id,
        batch.name,
        batch.allow_failures,
        encode_callback(&batch.then),
        encode_callback(&batch.catch),
        encode_callback(&batch.finally),
        now
    ])?;
    add_to_batch(conn, &batch.id, jobs, now)
}

/// Pushes jobs into a batch; only the jobs actually stored are counted.
pub(crate) fn add_to_batch(
    conn: &Connection,
    batch_id: &str,
    jobs: &[NewJob],
    now: i64,
) -> StoreResult<Vec<PushOutcome>> {
    let exists: Option<i64> = conn
        .prepare_cached("SELECT 1 FROM spool_batches WHERE id = ?1")?
        .query_row([batch_id], |row| row.get(0))
        .optional()?;
    if exists.is_none() {
        return Err(crate::StoreError::Invalid(format!(
            "no batch with id {batch_id}"
        )));
    }
    let jobs: Vec<NewJob> = jobs
        .iter()
        .map(|j| NewJob {
            batch_id: Some(batch_id.to_string()),
            ..j.clone()
        })
        .collect();
    let outcomes = push_in(conn, &jobs, now)?;
    let added = outcomes
        .iter()
        .filter(|o| **o == PushOutcome::Queued)
        .count() as i64;
    conn.prepare_cached(
        "UPDATE spool_batches SET total = total + ?2, pending = pending + ?2,
                finished_at = CASE WHEN ?2 > 0 THEN NULL ELSE finished_at END
         WHERE id = ?1",
    )?
    .execute(params![batch_id, added])?;
    Ok(outcomes)
}

/// Columns a batch listing selects, decoded by [`batch_row`].
pub(crate) const BATCH_COLUMNS: &str = "id, name, total, pending, failed, failed_ids, allow_failures, created_at, cancelled_at, finished_at";

pub(crate) fn batch_row(row: &Row<'_>) -> rusqlite::Result<BatchInfo> {
    let total = row.get::<_, i64>(2)?.max(0) as u64;
    let pending = row.get::<_, i64>(3)?.max(0) as u64;
    let failed_ids: String = row.get(5)?;
    Ok(BatchInfo {
        id: row.get(0)?,
        name: row.get(1)?,
        total,
        pending,
        failed: row.get::<_, i64>(4)?.max(0) as u64,
        progress: BatchInfo::percent(total, pending),
        allow_failures: row.get(6)?,
        failed_ids: serde_json::from_str(&failed_ids).unwrap_or_default(),
        created_at: rfc3339_ms(row.get(7)?),
        cancelled_at: row.get::<_, Option<i64>>(8)?.map(rfc3339_ms),
        finished_at: row.get::<_, Option<i64>>(9)?.map(rfc3339_ms),
    })
}

/// Puts the counts of a batch's retried failed jobs back to pending; retrying also lifts the
/// cancellation their failure caused.
pub(crate) fn uncount_retried(conn: &Connection, retried: &[(String, String)]) -> StoreResult<()> {
    for (job_id, batch_id) in retried {
        conn.prepare_cached(
            "UPDATE spool_batches SET pending = pending + 1, failed = MAX(failed - 1, 0),
                    failed_ids = COALESCE((SELECT json_group_array(value) FROM json_each(failed_ids)
                                           WHERE value <> ?2), '[]'),
                    cancelled_at = NULL, finished_at = NULL
             WHERE id = ?1",
        )?
        .execute(params![batch_id, job_id])?;
    }
    Ok(())
}

/// One sliding-window limiter call.
pub(crate) fn limit(
    conn: &Connection,
    key: &str,
    window: Duration,
    mode: LimitMode,
    now: i64,
) -> StoreResult<LimitState> {
    let window_ms = millis(window);
    conn.prepare_cached("DELETE FROM spool_limits WHERE key = ?1 AND at <= ?2")?
        .execute(params![key, now - window_ms])?;
    let (count, oldest): (i64, Option<i64>) = conn
        .prepare_cached("SELECT COUNT(*), MIN(at) FROM spool_limits WHERE key = ?1")?
        .query_row([key], |row| Ok((row.get(0)?, row.get(1)?)))?;
    let hit = match mode {
        LimitMode::Acquire(limit) => count < i64::from(limit),
        LimitMode::Record => true,
        LimitMode::Peek => false,
    };
    if hit {
        conn.prepare_cached("INSERT INTO spool_limits (key, at) VALUES (?1, ?2)")?
            .execute(params![key, now])?;
    }
    let count = count + hit as i64;
    let oldest = oldest.or(hit.then_some(now));
    let resets_in = oldest.map_or(0, |at| (at + window_ms - now).max(0));
    Ok(LimitState {
        hit,
        count: count as u32,
        resets_in: Duration::from_millis(resets_in as u64),
    })
}

/// Takes a concurrency slot for a job its worker holds under `token`.
pub(crate) fn acquire_slot(
    conn: &Connection,
    worker_id: &str,
    request: &SlotRequest,
    now: i64,
) -> StoreResult<bool> {
    let held: Option<i64> = conn
        .prepare_cached("SELECT 1 FROM spool_jobs WHERE id = ?1 AND worker_id = ?2 AND token = ?3")?
        .query_row(params![request.job_id, worker_id, request.token], |row| {
            row.get(0)
        })
        .optional()?;
    if held.is_none() {
        return Ok(false);
    }
    // Slots of expired holders or dead workers are free.
    conn.prepare_cached(
        "DELETE FROM spool_slots WHERE key = ?1 AND ((expires_at IS NOT NULL AND expires_at <= ?2)
             OR worker_id NOT IN (SELECT id FROM spool_workers WHERE expires_at > ?2))",
    )?
    .execute(params![request.key, now])?;
    let (taken, mine): (i64, i64) = conn
        .prepare_cached(
            "SELECT COUNT(*), COALESCE(SUM(holder = ?2), 0) FROM spool_slots WHERE key = ?1",
        )?
        .query_row(params![request.key, request.job_id], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
    if mine > 0 {
        return Ok(true);
    }
    if taken >= i64::from(request.limit) {
        return Ok(false);
    }
    conn.prepare_cached(
        "INSERT INTO spool_slots (key, holder, worker_id, expires_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        request.key,
        request.job_id,
        worker_id,
        request.expire_after.map(|d| now + millis(d))
    ])?;
    Ok(true)
}

/// Frees the slots of workers whose lease expired, and drops expired unique locks (periodic
/// jobs leave one per tick).
pub(crate) fn reap_workflow_state(conn: &Connection, now: i64) -> StoreResult<()> {
    conn.prepare_cached(
        "DELETE FROM spool_slots WHERE worker_id NOT IN (SELECT id FROM spool_workers WHERE expires_at > ?1)",
    )?
    .execute([now])?;
    conn.prepare_cached(
        "DELETE FROM spool_locks WHERE expires_at IS NOT NULL AND expires_at <= ?1",
    )?
    .execute([now])?;
    Ok(())
}

/// Columns a kept result selects, decoded by [`result_row`].
pub(crate) const RESULT_COLUMNS: &str = "id, queue, job, batch_id, result, completed_at";

pub(crate) fn result_row(row: &Row<'_>) -> rusqlite::Result<CompletedJob> {
    let result: Option<String> = row.get(4)?;
    Ok(CompletedJob {
        id: row.get(0)?,
        queue: row.get(1)?,
        job: row.get(2)?,
        batch_id: row.get(3)?,
        result: result.map(|r| serde_json::from_str(&r).unwrap_or(serde_json::Value::String(r))),
        completed_at: rfc3339_ms(row.get(5)?),
    })
}
