//! Workflows on SQLite: batches, limiters, concurrency slots, progress and kept results, and
//! the side effects of a job ending (lock and slot release, batch counters and callbacks,
//! results, follow-ups), which run inside the settling transaction.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{
    SqliteStore,
    queue::{push_in, untag_job},
    rows,
};
use crate::{
    envelope::now_ms,
    store::{
        BatchInfo, BatchPrune, CompletedJob, Held, LimitMode, LimitState, NewBatch, NewJob,
        Progress, PushOutcome, SlotRequest, StoreError, StoreResult, WorkflowStore,
        hands_on_batch_membership,
        rules::{BatchRow, Callbacks, batch_step, offset_ms},
    },
};

#[async_trait]
impl WorkflowStore for SqliteStore {
    async fn create_batch(
        &self,
        batch: &NewBatch,
        jobs: &[NewJob],
    ) -> StoreResult<Vec<PushOutcome>> {
        crate::store::check_batch(batch, jobs)?;
        let (batch, jobs) = (batch.clone(), jobs.to_vec());
        let outcomes = self
            .write(move |conn| {
                let now = now_ms();
                conn.prepare_cached(include_str!("sql/create_batch.sql"))?
                    .execute(params![
                        batch.id,
                        batch.name,
                        batch.allow_failures,
                        encode_callback(&batch.then),
                        encode_callback(&batch.catch),
                        encode_callback(&batch.finally),
                        now
                    ])?;
                add_to_batch_in(conn, &batch.id, &jobs, now)
            })
            .await?;
        self.wakeup.notify();
        Ok(outcomes)
    }

    async fn add_to_batch(&self, batch_id: &str, jobs: &[NewJob]) -> StoreResult<Vec<PushOutcome>> {
        crate::store::check_jobs(jobs)?;
        let (batch_id, jobs) = (batch_id.to_string(), jobs.to_vec());
        let outcomes = self
            .write(move |conn| add_to_batch_in(conn, &batch_id, &jobs, now_ms()))
            .await?;
        self.wakeup.notify();
        Ok(outcomes)
    }

    async fn batch(&self, id: &str) -> StoreResult<Option<BatchInfo>> {
        self.read_by_id(include_str!("sql/batch.sql"), id, rows::batch_info)
            .await
    }

    async fn batches(&self, limit: u32) -> StoreResult<Vec<BatchInfo>> {
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(include_str!("sql/batches.sql"))?
                .query_map([limit], rows::batch_info)?
                .collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn cancel_batch(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_string();
        self.write_one(move |conn| {
            Ok(conn
                .prepare_cached(include_str!("sql/cancel_batch.sql"))?
                .execute(params![id, now_ms()])?
                > 0)
        })
        .await
    }

    async fn prune_batches(&self, prune: BatchPrune) -> StoreResult<u64> {
        let now = now_ms();
        let before = |age: Option<Duration>| age.map(|a| now - offset_ms(a));
        let (finished, unfinished, cancelled) = (
            before(prune.finished),
            before(prune.unfinished),
            before(prune.cancelled),
        );
        self.write_one(move |conn| {
            Ok(conn
                .prepare_cached(include_str!("sql/prune_batches.sql"))?
                .execute(params![finished, unfinished, cancelled])? as u64)
        })
        .await
    }

    async fn limit(&self, key: &str, window: Duration, mode: LimitMode) -> StoreResult<LimitState> {
        let key = key.to_string();
        self.write(move |conn| {
            let now = now_ms();
            let window_ms = offset_ms(window);
            conn.prepare_cached(include_str!("sql/limit_expire.sql"))?
                .execute(params![key, now - window_ms])?;
            let (count, oldest): (i64, Option<i64>) = conn
                .prepare_cached(include_str!("sql/limit.sql"))?
                .query_row([&key], |row| Ok((row.get(0)?, row.get(1)?)))?;
            let hit = match mode {
                LimitMode::Acquire(limit) => count < i64::from(limit),
                LimitMode::Record => true,
                LimitMode::Peek => false,
            };
            if hit {
                conn.prepare_cached(include_str!("sql/limit_hit.sql"))?
                    .execute(params![key, now, now.saturating_add(window_ms)])?;
            }
            let count = count + hit as i64;
            let oldest = oldest.or(hit.then_some(now));
            let resets_in = oldest.map_or(0, |at| (at + window_ms - now).max(0));
            Ok(LimitState {
                hit,
                count: count as u32,
                resets_in: Duration::from_millis(resets_in as u64),
            })
        })
        .await
    }

    async fn prune_limits(&self) -> StoreResult<u64> {
        self.write_one(|conn| {
            Ok(conn
                .prepare_cached(include_str!("sql/prune_limits.sql"))?
                .execute([now_ms()])? as u64)
        })
        .await
    }

    async fn clear_limit(&self, key: &str) -> StoreResult<()> {
        let key = key.to_string();
        self.write_one(move |conn| {
            conn.prepare_cached(include_str!("sql/clear_limit.sql"))?
                .execute([key])?;
            Ok(())
        })
        .await
    }

    async fn acquire_slot(&self, worker_id: &str, request: &SlotRequest) -> StoreResult<bool> {
        let (worker_id, request) = (worker_id.to_string(), request.clone());
        self.write(move |conn| {
            let now = now_ms();
            let held: Option<i64> = conn
                .prepare_cached(include_str!("sql/acquire_slot_fence.sql"))?
                .query_row(params![request.job_id, worker_id, request.token], |row| {
                    row.get(0)
                })
                .optional()?;
            if held.is_none() {
                return Ok(false);
            }
            conn.prepare_cached(include_str!("sql/acquire_slot_free.sql"))?
                .execute(params![request.key, now])?;
            let (taken, mine): (i64, i64) = conn
                .prepare_cached(include_str!("sql/acquire_slot_count.sql"))?
                .query_row(params![request.key, request.job_id], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })?;
            if mine > 0 {
                return Ok(true);
            }
            if taken >= i64::from(request.limit) {
                return Ok(false);
            }
            conn.prepare_cached(include_str!("sql/acquire_slot.sql"))?
                .execute(params![
                    request.key,
                    request.job_id,
                    worker_id,
                    request.expire_after.map(|d| now + offset_ms(d))
                ])?;
            Ok(true)
        })
        .await
    }

    async fn set_progress(&self, held: Held<'_>, progress: &Progress) -> StoreResult<bool> {
        let (worker_id, id, token) = (held.worker_id.to_string(), held.id.to_string(), held.token);
        let progress = progress.clone();
        self.write_one(move |conn| {
            Ok(conn
                .prepare_cached(include_str!("sql/set_progress.sql"))?
                .execute(params![
                    id,
                    worker_id,
                    token,
                    i64::from(progress.percent.min(100)),
                    progress.message
                ])?
                > 0)
        })
        .await
    }

    async fn job_result(&self, id: &str) -> StoreResult<Option<CompletedJob>> {
        self.read_by_id(include_str!("sql/job_result.sql"), id, rows::completed_job)
            .await
    }

    async fn prune_results(&self, age: Duration) -> StoreResult<u64> {
        self.prune_older(include_str!("sql/prune_results.sql"), age)
            .await
    }

    async fn unique_holder(&self, _queue: &str, key: &str) -> StoreResult<Option<String>> {
        self.read_by_id(include_str!("sql/unique_holder.sql"), key, |row| row.get(0))
            .await
    }
}

/// Pushes jobs into a batch inside the caller's transaction; only the jobs actually stored are
/// counted. Fails if there is no such batch.
fn add_to_batch_in(
    conn: &Connection,
    batch_id: &str,
    jobs: &[NewJob],
    now: i64,
) -> StoreResult<Vec<PushOutcome>> {
    let exists: Option<i64> = conn
        .prepare_cached(include_str!("sql/add_to_batch_exists.sql"))?
        .query_row([batch_id], |row| row.get(0))
        .optional()?;
    if exists.is_none() {
        return Err(StoreError::Invalid(format!("no batch with id {batch_id}")));
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
    conn.prepare_cached(include_str!("sql/add_to_batch.sql"))?
        .execute(params![batch_id, added])?;
    Ok(outcomes)
}

/// How a job ended, for its side effects.
pub(super) enum End<'a> {
    /// Completed, keeping `result` if the handler gave one.
    Completed { result: Option<&'a str> },
    /// Failed for good (by its handler, or by the reaper as a poison pill).
    Failed,
}

/// Applies a settled job's side effects inside the settling transaction: its lock and slots
/// are released, its batch counted, its result kept, its follow-ups pushed.
pub(super) fn after_settle(
    conn: &Connection,
    row: &rows::Settled,
    end: End<'_>,
    follow_ups: &[NewJob],
    now: i64,
) -> StoreResult<()> {
    if let Some(key) = &row.unique_key {
        conn.prepare_cached(include_str!("sql/settle_unlock.sql"))?
            .execute(params![key, row.id])?;
    }
    release_slots(conn, &row.id)?;
    untag_job(conn, &row.id, row.tags.as_deref())?;
    let failed = matches!(end, End::Failed);
    if let End::Completed { result } = end {
        keep_completed(conn, row, now)?;
        if let Some(result) = result {
            conn.prepare_cached(include_str!("sql/keep_result.sql"))?
                .execute(params![
                    row.id,
                    row.queue,
                    row.job,
                    row.batch_id,
                    result,
                    now
                ])?;
        }
    }
    // A chain link in a batch hands its membership to its next link (the rule every store
    // shares, written once in `store/types.rs`); a failed link ends the chain and is counted.
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

/// Writes a completed job's history record, and indexes it under its tags.
fn keep_completed(conn: &Connection, row: &rows::Settled, now: i64) -> StoreResult<()> {
    conn.prepare_cached(include_str!("sql/keep_completed.sql"))?
        .execute(params![
            row.id,
            row.queue,
            row.job,
            row.batch_id,
            row.tags,
            row.attempts,
            row.created_at,
            row.reserved_at,
            now
        ])?;
    let tags = crate::store::tags_of_column(row.tags.as_deref());
    if !tags.is_empty() {
        let mut insert = conn.prepare_cached(include_str!("sql/tag_completed.sql"))?;
        for tag in tags {
            insert.execute(params![tag, now, row.id])?;
        }
    }
    Ok(())
}

/// Frees every concurrency slot a job holds.
pub(super) fn release_slots(conn: &Connection, job_id: &str) -> StoreResult<()> {
    conn.prepare_cached(include_str!("sql/release_slots.sql"))?
        .execute([job_id])?;
    Ok(())
}

/// Counts a finished job in its batch and pushes the callbacks that became due, each once.
///
/// The batch-callback decision, a rule every store shares, is [`batch_step`], made in Rust on
/// the batch's row as this write transaction read it: no other settle can change the row in
/// between (the writer thread runs one `BEGIN IMMEDIATE` transaction at a time).
fn count_in_batch(
    conn: &Connection,
    batch_id: &str,
    job_id: &str,
    failed: bool,
    now: i64,
) -> StoreResult<()> {
    let read = conn
        .prepare_cached(include_str!("sql/batch_job_settled_read.sql"))?
        .query_row([batch_id], |row| {
            let batch = BatchRow {
                pending: row.get(0)?,
                failed: row.get(1)?,
                allow_failures: row.get(2)?,
                fired: Callbacks {
                    then: row.get(3)?,
                    catch: row.get(4)?,
                    finally: row.get(5)?,
                },
            };
            let callbacks: [Option<String>; 3] = [row.get(6)?, row.get(7)?, row.get(8)?];
            Ok((batch, callbacks))
        })
        .optional()?;
    let Some((batch, [then_job, catch_job, finally_job])) = read else {
        return Ok(()); // the batch was pruned: nothing to count
    };
    let step = batch_step(batch, 1, i64::from(failed));
    conn.prepare_cached(include_str!("sql/batch_job_settled.sql"))?
        .execute(params![
            batch_id,
            step.pending,
            step.failed,
            failed.then_some(job_id),
            step.cancels,
            step.finished,
            step.fire.catch,
            step.fire.finally,
            step.fire.then,
            now
        ])?;
    // In this order: catch, finally, then.
    let due: Vec<NewJob> = [
        (step.fire.catch, catch_job),
        (step.fire.finally, finally_job),
        (step.fire.then, then_job),
    ]
    .into_iter()
    .filter_map(|(fire, job)| job.filter(|_| fire))
    .filter_map(|json| decode_callback(&json))
    .collect();
    if !due.is_empty() {
        push_in(conn, &due, now)?;
    }
    Ok(())
}

/// A callback job as stored: `[id, queue, job, envelope]`. SQLite keeps this form rather than
/// the server stores' `rules::encode_callback`, because existing database files hold it.
fn encode_callback(job: &Option<NewJob>) -> Option<String> {
    job.as_ref()
        .map(|j| serde_json::json!([j.id, j.queue, j.job, j.envelope]).to_string())
}

/// The callback job [`encode_callback`] stored; `None` if it does not decode. Its tags are
/// its envelope's.
fn decode_callback(json: &str) -> Option<NewJob> {
    let (id, queue, job, envelope): (String, String, String, String) =
        serde_json::from_str(json).ok()?;
    let tags = crate::Envelope::decode(&envelope)
        .map(|e| crate::store::distinct_tags(&e.tags))
        .unwrap_or_default();
    Some(NewJob {
        tags,
        id,
        queue,
        job,
        envelope,
        delay: Duration::ZERO,
        retry_for: None,
        batch_id: None,
        unique: None,
        // Checked when the batch was dispatched.
        max_payload: usize::MAX,
    })
}
