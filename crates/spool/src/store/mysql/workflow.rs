//! `WorkflowStore` on MySQL: batches, limiters, concurrency slots, progress and kept results.
//!
//! The per-job workflow state (unique locks, slots, results, batch counts) changes in the same
//! transaction as the push, claim or settlement it belongs to: the functions for that are in
//! `job_state` and `batches`, and do nothing (no statement) when given nothing to do, so plain
//! jobs pay for none of it.

use crate::store::Held;
use crate::store::rules::encode_callback;
use crate::store::rules::{duration_ms, offset_ms};
use std::time::Duration;

use async_trait::async_trait;

use super::{
    MysqlStore,
    retry::{Begin, TxError, idempotent, in_transaction},
    rows::batch_info,
    sql, sql_with,
};
use crate::store::{
    BatchInfo, BatchPrune, CompletedJob, LimitMode, LimitState, NewBatch, NewJob, Progress,
    PushOutcome, SlotRequest, StoreError, StoreResult, WorkflowStore, sql::rows,
};

pub(super) mod batches;
pub(super) mod job_state;
mod limits;

use limits::KeyKind;

#[async_trait]
impl WorkflowStore for MysqlStore {
    async fn create_batch(
        &self,
        batch: &NewBatch,
        jobs: &[NewJob],
    ) -> StoreResult<Vec<PushOutcome>> {
        crate::store::check_batch(batch, jobs)?;
        let outcomes = in_transaction!(&self.pool, Begin::Write, |conn| {
            // A concurrent creation of the same id makes the insert fail with a duplicate key;
            // the transaction then runs again and finds the batch here.
            let exists: Option<i32> =
                sqlx::query_scalar(include_str!("sql/create_batch_exists.sql"))
                    .bind(&batch.id)
                    .fetch_optional(&mut *conn)
                    .await?;
            if exists.is_some() {
                return Err(TxError::Store(StoreError::Invalid(format!(
                    "a batch with id {} exists already",
                    batch.id
                ))));
            }
            sqlx::query(sql(include_str!("sql/create_batch.sql")))
                .bind(&batch.id)
                .bind(&batch.name)
                .bind(batch.allow_failures)
                .bind(encode_callback(batch.then.as_ref()))
                .bind(encode_callback(batch.catch.as_ref()))
                .bind(encode_callback(batch.finally.as_ref()))
                .execute(&mut *conn)
                .await?;
            batches::add_to_batch_in(conn, &batch.id, jobs).await
        })?;
        self.woken_if_queued(&outcomes);
        Ok(outcomes)
    }

    async fn add_to_batch(&self, batch_id: &str, jobs: &[NewJob]) -> StoreResult<Vec<PushOutcome>> {
        crate::store::check_jobs(jobs)?;
        let outcomes = in_transaction!(&self.pool, Begin::Write, |conn| {
            batches::add_to_batch_in(conn, batch_id, jobs).await
        })?;
        self.woken_if_queued(&outcomes);
        Ok(outcomes)
    }

    async fn batch(&self, id: &str) -> StoreResult<Option<BatchInfo>> {
        self.row_by_id(
            include_str!("sql/batch.sql"),
            rows::BATCH_COLUMNS,
            id,
            batch_info,
        )
        .await
    }

    async fn batches(&self, limit: u32) -> StoreResult<Vec<BatchInfo>> {
        idempotent!(&self.pool, |conn| {
            let found = sqlx::query(sql_with(
                include_str!("sql/batches.sql"),
                &[("columns", rows::BATCH_COLUMNS)],
            ))
            .bind(i64::from(limit))
            .fetch_all(conn)
            .await?;
            found.iter().map(batch_info).collect()
        })
    }

    async fn cancel_batch(&self, id: &str) -> StoreResult<bool> {
        self.change_by_id(include_str!("sql/cancel_batch.sql"), id)
            .await
    }

    async fn prune_batches(&self, prune: BatchPrune) -> StoreResult<u64> {
        let age = |d: Option<Duration>| d.map(offset_ms);
        let (finished, unfinished, cancelled) = (
            age(prune.finished),
            age(prune.unfinished),
            age(prune.cancelled),
        );
        in_transaction!(&self.pool, Begin::Write, |conn| {
            let n = sqlx::query(sql(include_str!("sql/prune_batches.sql")))
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

    async fn limit(&self, key: &str, window: Duration, mode: LimitMode) -> StoreResult<LimitState> {
        let window_ms = offset_ms(window);
        let cap = limits::cap(mode);
        let (count, oldest, hit, now) = in_transaction!(&self.pool, Begin::Write, |conn| {
            limits::lock_key(conn, KeyKind::Limit, key).await?;
            // One clock reading for the whole call.
            let (now, count, oldest, expired): (i64, i64, Option<i64>, i64) =
                sqlx::query_as(sql(include_str!("sql/limit.sql")))
                    .bind(window_ms)
                    .bind(window_ms)
                    .bind(window_ms)
                    .bind(key)
                    .fetch_one(&mut *conn)
                    .await?;
            if expired > 0 {
                sqlx::query(include_str!("sql/limit_expire.sql"))
                    .bind(key)
                    .bind(now - window_ms)
                    .execute(&mut *conn)
                    .await?;
            }
            let hit = count < cap;
            if hit {
                sqlx::query(include_str!("sql/limit_hit.sql"))
                    .bind(key)
                    .bind(now)
                    .bind(now.saturating_add(window_ms))
                    .execute(&mut *conn)
                    .await?;
            }
            Ok::<_, TxError>((count, oldest, hit, now))
        })?;
        let oldest = oldest.or(hit.then_some(now));
        let resets_in = oldest.map_or(0, |at| (at + window_ms - now).max(0));
        Ok(LimitState {
            hit,
            count: u32::try_from(count + i64::from(hit)).unwrap_or(u32::MAX),
            resets_in: duration_ms(resets_in),
        })
    }

    async fn prune_limits(&self) -> StoreResult<u64> {
        // Deleting expired hits twice is harmless.
        let pruned = idempotent!(&self.pool, |conn| {
            sqlx::query(sql(include_str!("sql/prune_limits.sql")))
                .execute(conn)
                .await
        })?;
        Ok(pruned.rows_affected())
    }

    async fn clear_limit(&self, key: &str) -> StoreResult<()> {
        // Deleting twice is harmless.
        idempotent!(&self.pool, |conn| {
            sqlx::query(include_str!("sql/clear_limit.sql"))
                .bind(key)
                .execute(conn)
                .await
        })?;
        Ok(())
    }

    async fn acquire_slot(&self, worker_id: &str, request: &SlotRequest) -> StoreResult<bool> {
        // Under the key's lock, so that two callers cannot both see a free slot and both take
        // it (see `limits`).
        let expire_after = request.expire_after.map(offset_ms);
        in_transaction!(&self.pool, Begin::Write, |conn| {
            limits::lock_key(conn, KeyKind::Slot, &request.key).await?;
            // The fence, and the mark that tells the job's settlement to free its slots (the
            // fast settle path leaves marked jobs alone). It locks the job's row until the
            // commit, so a settlement of the job either ran before (the fence fails) or runs
            // after and sees the slot. Rows matched, not rows changed (the driver asks for
            // found rows): a job asking again is still its holder.
            let held = sqlx::query(include_str!("sql/acquire_slot_fence.sql"))
                .bind(&request.job_id)
                .bind(worker_id)
                .bind(request.token)
                .execute(&mut *conn)
                .await?
                .rows_affected()
                > 0;
            if !held {
                return Ok::<_, TxError>(false);
            }
            // Slots of expired holders or dead workers are free.
            sqlx::query(sql(include_str!("sql/acquire_slot_free.sql")))
                .bind(&request.key)
                .execute(&mut *conn)
                .await?;
            let (taken, mine): (i64, i64) =
                sqlx::query_as(include_str!("sql/acquire_slot_count.sql"))
                    .bind(&request.job_id)
                    .bind(&request.key)
                    .fetch_one(&mut *conn)
                    .await?;
            if mine > 0 {
                return Ok(true);
            }
            if taken >= i64::from(request.limit) {
                return Ok(false);
            }
            sqlx::query(sql(include_str!("sql/acquire_slot.sql")))
                .bind(&request.key)
                .bind(&request.job_id)
                .bind(worker_id)
                .bind(expire_after)
                .execute(&mut *conn)
                .await?;
            Ok(true)
        })
    }

    async fn set_progress(&self, held: Held<'_>, progress: &Progress) -> StoreResult<bool> {
        let (worker_id, id, token) = (held.worker_id, held.id, held.token);
        // Writing the same progress twice is harmless, so a lost connection is simply retried.
        // Rows matched, not rows changed (the driver asks for found rows): reporting the same
        // progress again still counts as held.
        let n = idempotent!(&self.pool, |conn| {
            sqlx::query(include_str!("sql/set_progress.sql"))
                .bind(i64::from(progress.percent.min(100)))
                .bind(progress.message.as_deref())
                .bind(id)
                .bind(worker_id)
                .bind(token)
                .execute(conn)
                .await
        })?
        .rows_affected();
        Ok(n > 0)
    }

    async fn job_result(&self, id: &str) -> StoreResult<Option<CompletedJob>> {
        idempotent!(&self.pool, |conn| {
            let statement = sql_with(
                include_str!("sql/job_result.sql"),
                &[("columns", rows::COMPLETED_COLUMNS)],
            );
            let row = sqlx::query(statement)
                .bind(id)
                .bind(id)
                .bind(id)
                .fetch_optional(conn)
                .await?;
            row.as_ref().map(rows::completed_job).transpose()
        })
    }

    async fn prune_results(&self, age: Duration) -> StoreResult<u64> {
        self.prune_older_than(include_str!("sql/prune_results.sql"), age)
            .await
    }

    async fn unique_holder(&self, _queue: &str, key: &str) -> StoreResult<Option<String>> {
        self.row_by_id(include_str!("sql/unique_holder.sql"), "owner", key, |row| {
            sqlx::Row::try_get(row, 0)
        })
        .await
    }
}
