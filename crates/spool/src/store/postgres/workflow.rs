//! Workflow state on PostgreSQL: batches, limiters, concurrency slots, progress and kept
//! results. What settling a job does to them (lock and slot release, batch counters and
//! callbacks, kept results, follow-ups) happens with the settlement, in `queue::settle`.

use crate::store::Held;
use crate::store::rules::{duration_ms, encode_callback, offset_ms};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::PgConnection;

use super::{PostgresStore, fnv1a};
use crate::store::{
    BatchInfo, BatchPrune, CompletedJob, LimitMode, LimitState, NewBatch, NewJob, Progress,
    PushOutcome, SlotRequest, StoreError, StoreResult, WorkflowStore, sql::rows,
};

#[async_trait]
impl WorkflowStore for PostgresStore {
    async fn create_batch(
        &self,
        batch: &NewBatch,
        jobs: &[NewJob],
    ) -> StoreResult<Vec<PushOutcome>> {
        crate::store::check_batch(batch, jobs)?;
        let mut tx = self.pool.begin().await?;
        self.query(include_str!("sql/create_batch.sql"))
            .bind(&batch.id)
            .bind(&batch.name)
            .bind(batch.allow_failures)
            .bind(encode_callback(batch.then.as_ref()))
            .bind(encode_callback(batch.catch.as_ref()))
            .bind(encode_callback(batch.finally.as_ref()))
            .execute(&mut *tx)
            .await?;
        let outcomes = self.add_to_batch_in(&mut tx, &batch.id, jobs).await?;
        tx.commit().await?;
        self.woken_if_queued(&outcomes);
        Ok(outcomes)
    }

    async fn add_to_batch(&self, batch_id: &str, jobs: &[NewJob]) -> StoreResult<Vec<PushOutcome>> {
        crate::store::check_jobs(jobs)?;
        let mut tx = self.pool.begin().await?;
        let outcomes = self.add_to_batch_in(&mut tx, batch_id, jobs).await?;
        tx.commit().await?;
        self.woken_if_queued(&outcomes);
        Ok(outcomes)
    }

    async fn batch(&self, id: &str) -> StoreResult<Option<BatchInfo>> {
        Ok(self.batches_where(Some(id), 1).await?.pop())
    }

    async fn batches(&self, limit: u32) -> StoreResult<Vec<BatchInfo>> {
        self.batches_where(None, limit).await
    }

    async fn cancel_batch(&self, id: &str) -> StoreResult<bool> {
        self.write_by_id(include_str!("sql/cancel_batch.sql"), id)
            .await
    }

    async fn prune_batches(&self, prune: BatchPrune) -> StoreResult<u64> {
        let mut conn = self.unit(&self.pool).await?;
        let n = self
            .query(include_str!("sql/prune_batches.sql"))
            .bind(prune.finished.map(offset_ms))
            .bind(prune.unfinished.map(offset_ms))
            .bind(prune.cancelled.map(offset_ms))
            .execute(&mut *conn)
            .await?
            .rows_affected();
        conn.done().await?;
        Ok(n)
    }

    async fn limit(&self, key: &str, window: Duration, mode: LimitMode) -> StoreResult<LimitState> {
        let window_ms = offset_ms(window);
        // A hit is recorded while fewer than `cap` are in the window.
        let cap = match mode {
            LimitMode::Acquire(limit) => i64::from(limit),
            LimitMode::Record => i64::MAX,
            LimitMode::Peek => 0,
        };
        let mut tx = self.pool.begin().await?;
        self.lock_key_in(&mut tx, KeyClass::Limit, key).await?;
        // The count filters on the window itself: the pruning DELETE runs on the same snapshot,
        // so the SELECT would still see the rows it removes.
        let (count, oldest, hit_at, now): (i64, Option<i64>, Option<i64>, i64) = self
            .query_as(include_str!("sql/limit.sql"))
            .bind(key)
            .bind(window_ms)
            .bind(cap)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        let hit = hit_at.is_some();
        let oldest = oldest.or(hit_at);
        let resets_in = oldest.map_or(0, |at| (at + window_ms - now).max(0));
        Ok(LimitState {
            hit,
            count: u32::try_from(count + i64::from(hit)).unwrap_or(u32::MAX),
            resets_in: duration_ms(resets_in),
        })
    }

    async fn prune_limits(&self) -> StoreResult<u64> {
        let mut conn = self.unit(&self.pool).await?;
        let pruned = self
            .query(include_str!("sql/prune_limits.sql"))
            .execute(&mut *conn)
            .await?;
        conn.done().await?;
        Ok(pruned.rows_affected())
    }

    async fn clear_limit(&self, key: &str) -> StoreResult<()> {
        let mut conn = self.unit(&self.pool).await?;
        self.query(include_str!("sql/clear_limit.sql"))
            .bind(key)
            .execute(&mut *conn)
            .await?;
        conn.done().await?;
        Ok(())
    }

    async fn acquire_slot(&self, worker_id: &str, request: &SlotRequest) -> StoreResult<bool> {
        // Under the key's lock, so that two callers cannot both see a free slot and both take
        // it.
        let mut tx = self.pool.begin().await?;
        self.lock_key_in(&mut tx, KeyClass::Slot, &request.key)
            .await?;
        // Slots of expired holders or dead workers are free: delete them first, in a statement
        // of their own, so that the count below (and a holder re-taking its own expired slot)
        // sees them gone.
        let held: bool = self
            .query_scalar(include_str!("sql/acquire_slot_free.sql"))
            .bind(&request.key)
            .bind(&request.job_id)
            .bind(worker_id)
            .bind(request.token)
            .fetch_one(&mut *tx)
            .await?;
        if !held {
            tx.commit().await?;
            return Ok(false);
        }
        let got: bool = self
            .query_scalar(include_str!("sql/acquire_slot.sql"))
            .bind(&request.key)
            .bind(&request.job_id)
            .bind(worker_id)
            .bind(i64::from(request.limit))
            .bind(request.expire_after.map(offset_ms))
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(got)
    }

    async fn set_progress(&self, held: Held<'_>, progress: &Progress) -> StoreResult<bool> {
        let (worker_id, id, token) = (held.worker_id, held.id, held.token);
        // Fenced like a settlement.
        let mut conn = self.unit(&self.pool).await?;
        let n = self
            .query(include_str!("sql/set_progress.sql"))
            .bind(id)
            .bind(worker_id)
            .bind(token)
            .bind(i64::from(progress.percent.min(100)))
            .bind(progress.message.as_deref())
            .execute(&mut *conn)
            .await?
            .rows_affected();
        conn.done().await?;
        Ok(n > 0)
    }

    async fn job_result(&self, id: &str) -> StoreResult<Option<CompletedJob>> {
        self.row_by_id(include_str!("sql/job_result.sql"), id, rows::completed_job)
            .await
    }

    async fn prune_results(&self, age: Duration) -> StoreResult<u64> {
        self.prune_older_than(include_str!("sql/prune_results.sql"), age)
            .await
    }

    async fn unique_holder(&self, _queue: &str, key: &str) -> StoreResult<Option<String>> {
        self.row_by_id(include_str!("sql/unique_holder.sql"), key, |row| {
            sqlx::Row::try_get(row, 0)
        })
        .await
    }
}

/// Which advisory-lock class a limiter or slot key belongs to.
#[derive(Clone, Copy)]
enum KeyClass {
    Limit,
    Slot,
}

impl PostgresStore {
    /// Pushes jobs into a batch; only the jobs actually stored are counted, and a finished
    /// batch that gains jobs is open again.
    async fn add_to_batch_in(
        &self,
        conn: &mut PgConnection,
        batch_id: &str,
        jobs: &[NewJob],
    ) -> StoreResult<Vec<PushOutcome>> {
        // Locked until commit: a concurrent prune cannot delete the batch under its new jobs.
        let exists: Option<i32> = self
            .query_scalar(include_str!("sql/add_to_batch_lock.sql"))
            .bind(batch_id)
            .fetch_optional(&mut *conn)
            .await?;
        if exists.is_none() {
            return Err(StoreError::Invalid(format!("no batch with id {batch_id}")));
        }
        let outcomes = self.push_in(conn, jobs, Some(batch_id)).await?;
        let added = outcomes
            .iter()
            .filter(|o| **o == PushOutcome::Queued)
            .count();
        if added > 0 {
            self.query(include_str!("sql/add_to_batch_count.sql"))
                .bind(batch_id)
                .bind(i64::try_from(added).unwrap_or(i64::MAX))
                .execute(&mut *conn)
                .await?;
        }
        Ok(outcomes)
    }

    /// One batch, or the newest `limit` ones.
    async fn batches_where(&self, id: Option<&str>, limit: u32) -> StoreResult<Vec<BatchInfo>> {
        let mut conn = self.unit(&self.pool).await?;
        let found = self
            .query(include_str!("sql/batches.sql"))
            .bind(id)
            .bind(i64::from(limit))
            .fetch_all(&mut *conn)
            .await?;
        conn.done().await?;
        Ok(found
            .iter()
            .map(rows::batch_info)
            .collect::<Result<_, _>>()?)
    }

    /// Takes the transaction-level advisory lock of a limiter or slot key.
    ///
    /// The limiter keeps one row per hit and the slots one row per holder, so an idle key has
    /// no row at all: row locks (`FOR UPDATE`) cannot serialise its first callers, and two of
    /// them would both count zero and both insert. An advisory lock on the key's hash can: it
    /// needs no row and no extra table, PostgreSQL drops it at commit or rollback (a crashed
    /// caller cannot leave it behind), and it makes only callers of the same key wait. The
    /// two-integer form keeps these locks apart from the migration lock (one `bigint`); the
    /// first integer names the schema and the use, the second is `hashtext(key)` (the same in
    /// every session of one server). Two keys with the same hash merely share a queue.
    async fn lock_key_in(
        &self,
        conn: &mut PgConnection,
        class: KeyClass,
        key: &str,
    ) -> StoreResult<()> {
        let purpose = match class {
            KeyClass::Limit => "limit",
            KeyClass::Slot => "slot",
        };
        // Truncated on purpose: the class only has to differ between schemas and uses.
        let class_key = fnv1a(format!("spool {purpose} {}", self.schema).as_bytes()) as i32;
        self.query(include_str!("sql/lock_key.sql"))
            .bind(class_key)
            .bind(key)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}
