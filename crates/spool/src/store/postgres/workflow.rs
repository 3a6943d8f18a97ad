//! Workflow state on PostgreSQL: unique locks taken with the push, the side effects of settling
//! a job (lock and slot release, batch counters and callbacks, kept results, follow-ups),
//! batches, limiters and concurrency slots.
//!
//! Functions named `*_in` run on the caller's connection, inside its transaction when it has
//! one; the others open their own.

use std::time::Duration;

use serde::Serialize;
use sqlx::PgConnection;

use super::{PostgresStore, fenced_ids, fnv1a, offset_ms, push_outcomes, rows};
use crate::store::{
    BatchInfo, BatchPrune, CompletedJob, LimitMode, LimitState, NewBatch, NewJob, PushOutcome,
    Settlement, SlotRequest, StoreError, StoreResult,
};

/// A CTE named `name` that releases the locks held `until` the given moment by the rows of
/// `source` (a CTE with `id` and `unique_key` columns). Only the owner releases a lock: a
/// duplicate that was refused never took it.
pub(super) fn release_locks_cte(name: &str, source: &str, until: &str) -> String {
    format!(
        "{name} AS (
             DELETE FROM {{schema}}.locks l USING {source} s
             WHERE s.unique_key IS NOT NULL AND l.key = s.unique_key AND l.owner = s.id
               AND l.until = '{until}')"
    )
}

/// A CTE named `name` that frees the concurrency slots of the rows of `source` (a CTE with an
/// `id` column): a settled job holds none, whatever the settlement.
pub(super) fn free_slots_cte(name: &str, source: &str) -> String {
    format!("{name} AS (DELETE FROM {{schema}}.slots s USING {source} x WHERE s.holder = x.id)")
}

/// A job that ended in a batch (completed or failed for good), to be counted there.
#[derive(Debug)]
pub(super) struct Ended {
    pub(super) batch_id: String,
    pub(super) job_id: String,
    pub(super) failed: bool,
}

/// The follow-ups of the completions and failures that were applied, in input order. Matched on
/// `(id, token)`, so a stale duplicate of an applied settlement pushes nothing.
pub(super) fn applied_follow_ups(
    settlements: &[Settlement],
    applied: &[(String, i64)],
) -> Vec<NewJob> {
    let applied: std::collections::HashSet<(&str, i64)> = applied
        .iter()
        .map(|(id, token)| (id.as_str(), *token))
        .collect();
    settlements
        .iter()
        .filter_map(|s| match s {
            Settlement::Complete {
                id,
                token,
                follow_ups,
                ..
            }
            | Settlement::Fail {
                id,
                token,
                follow_ups,
                ..
            } if !follow_ups.is_empty() && applied.contains(&(id.as_str(), *token)) => {
                Some(follow_ups)
            }
            _ => None,
        })
        .flatten()
        .cloned()
        .collect()
}

/// A batch callback as stored in its JSONB column: pushed as is (no unique lock, no batch).
#[derive(Serialize)]
struct Callback<'a> {
    id: &'a str,
    queue: &'a str,
    job: &'a str,
    envelope: &'a str,
    delay_ms: i64,
    retry_for_ms: Option<i64>,
}

fn encode_callback(job: Option<&NewJob>) -> Option<String> {
    job.map(|j| {
        serde_json::to_string(&Callback {
            id: &j.id,
            queue: &j.queue,
            job: &j.job,
            envelope: &j.envelope,
            delay_ms: offset_ms(j.delay),
            retry_for_ms: j.retry_for.map(offset_ms),
        })
        .expect("plain data encodes")
    })
}

/// Which advisory-lock class a limiter or slot key belongs to.
#[derive(Clone, Copy)]
enum KeyClass {
    Limit,
    Slot,
}

impl PostgresStore {
    /// Pushes jobs on `conn`, taking each one's unique lock in the same statement: a job whose
    /// lock is held (and not expired) is not stored and reported as already queued. With
    /// `batch`, every job is stored in that batch whatever its envelope says. Queues a
    /// notification if anything was stored (delivered when `conn`'s transaction commits).
    pub(super) async fn push_in(
        &self,
        conn: &mut PgConnection,
        jobs: &[NewJob],
        batch: Option<&str>,
    ) -> StoreResult<Vec<PushOutcome>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
        let queues: Vec<&str> = jobs.iter().map(|j| j.queue.as_str()).collect();
        let names: Vec<&str> = jobs.iter().map(|j| j.job.as_str()).collect();
        let envelopes: Vec<&str> = jobs.iter().map(|j| j.envelope.as_str()).collect();
        let delays: Vec<i64> = jobs.iter().map(|j| offset_ms(j.delay)).collect();
        let windows: Vec<Option<i64>> = jobs.iter().map(|j| j.retry_for.map(offset_ms)).collect();
        let batches: Vec<Option<&str>> = jobs
            .iter()
            .map(|j| batch.or(j.batch_id.as_deref()))
            .collect();
        let keys: Vec<Option<&str>> = jobs
            .iter()
            .map(|j| j.unique.as_ref().map(|u| u.key.as_str()))
            .collect();
        let untils: Vec<Option<&str>> = jobs
            .iter()
            .map(|j| j.unique.as_ref().map(|u| u.until.as_str()))
            .collect();
        let ttls: Vec<Option<i64>> = jobs
            .iter()
            .map(|j| j.unique.as_ref().and_then(|u| u.ttl).map(offset_ms))
            .collect();
        // One statement, so one round trip, for the whole batch. Locks first: the earliest job
        // of each key in the batch tries to take it (DISTINCT ON), inserting it or replacing an
        // expired holder; a live holder is left alone and its row locked, so a concurrent pusher
        // of the same key waits for this transaction and then sees the lock. A job is stored
        // only if it needs no lock or took its own. ORDER BY ord keeps `seq` in push order, a
        // repeated id is skipped by ON CONFLICT, and the notification is queued once if
        // anything was inserted.
        let inserted: Vec<(String,)> = sqlx::query_as(self.sql(
            "WITH clock AS MATERIALIZED (SELECT {schema}.now_ms() AS ms),
             n AS MATERIALIZED (
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[],
                                      $6::bigint[], $7::text[], $8::text[], $9::text[], $10::bigint[])
                      WITH ORDINALITY AS n (id, queue, job, envelope, delay_ms, retry_for_ms,
                                            batch_id, unique_key, until, ttl_ms, ord)),
             locked AS (
                 INSERT INTO {schema}.locks (key, owner, until, expires_at)
                 SELECT DISTINCT ON (n.unique_key) n.unique_key, n.id, n.until, c.ms + n.ttl_ms
                 FROM n, clock c
                 WHERE n.unique_key IS NOT NULL
                 ORDER BY n.unique_key, n.ord
                 ON CONFLICT (key) DO UPDATE
                     SET owner = excluded.owner, until = excluded.until,
                         expires_at = excluded.expires_at
                     WHERE locks.expires_at IS NOT NULL
                       AND locks.expires_at <= (SELECT ms FROM clock)
                 RETURNING key, owner),
             ins AS (
                 INSERT INTO {schema}.jobs (id, queue, job, envelope, available_at, retry_until,
                                            created_at, batch_id, unique_key)
                 SELECT n.id, n.queue, n.job, n.envelope, c.ms + n.delay_ms, c.ms + n.retry_for_ms,
                        c.ms, n.batch_id, n.unique_key
                 FROM n, clock c
                 WHERE n.unique_key IS NULL
                    OR EXISTS (SELECT 1 FROM locked l WHERE l.key = n.unique_key AND l.owner = n.id)
                 ORDER BY n.ord
                 ON CONFLICT (id) DO NOTHING
                 RETURNING id),
             notified AS MATERIALIZED (
                 SELECT pg_notify($11, '') FROM (SELECT 1 FROM ins LIMIT 1) AS any_inserted)
             SELECT ins.id FROM ins LEFT JOIN notified ON true",
        ))
        .bind(&ids)
        .bind(&queues)
        .bind(&names)
        .bind(&envelopes)
        .bind(&delays)
        .bind(&windows)
        .bind(&batches)
        .bind(&keys)
        .bind(&untils)
        .bind(&ttls)
        .bind(&self.channel)
        .fetch_all(&mut *conn)
        .await?;
        Ok(push_outcomes(&ids, &fenced_ids(inserted)))
    }

    /// Counts jobs that ended in their batches and pushes the callbacks that became due, each
    /// at most once: `catch` at the first failure, `finally` when no job is pending, `then`
    /// when no job is pending and none failed. Without `allow_failures` the first failure
    /// cancels the batch. Returns how many callbacks were pushed (the caller notifies).
    ///
    /// The jobs are counted per batch in one statement. That is the same as counting them one
    /// by one: `pending` reaches zero only with the last of them, when every failure among them
    /// is already counted, so the same callbacks come due either way.
    pub(super) async fn count_in_batches_in(
        &self,
        conn: &mut PgConnection,
        ended: &[Ended],
    ) -> StoreResult<u64> {
        if ended.is_empty() {
            return Ok(0);
        }
        let batch_ids: Vec<&str> = ended.iter().map(|e| e.batch_id.as_str()).collect();
        let job_ids: Vec<&str> = ended.iter().map(|e| e.job_id.as_str()).collect();
        let failed: Vec<bool> = ended.iter().map(|e| e.failed).collect();
        // `before` locks the batch rows in id order (two settlements touching the same batches
        // cannot deadlock) and reads their fired flags as they are under the lock; RETURNING
        // only shows the new flags, so comparing the two tells which callbacks fire now. A
        // pruned batch has no row: its jobs are not counted anywhere.
        let fired: i64 = sqlx::query_scalar(self.sql(
            "WITH clock AS MATERIALIZED (SELECT {schema}.now_ms() AS ms),
             ended AS MATERIALIZED (
                 SELECT e.batch_id, COUNT(*) AS n, COUNT(*) FILTER (WHERE e.failed) AS failures,
                        COALESCE(array_agg(e.job_id ORDER BY e.ord) FILTER (WHERE e.failed), '{}')
                            AS failed_ids
                 FROM UNNEST($1::text[], $2::text[], $3::bool[]) WITH ORDINALITY
                      AS e (batch_id, job_id, failed, ord)
                 GROUP BY e.batch_id),
             before AS MATERIALIZED (
                 SELECT b.id, b.then_fired, b.catch_fired, b.finally_fired
                 FROM {schema}.batches b
                 WHERE b.id IN (SELECT batch_id FROM ended)
                 ORDER BY b.id
                 FOR UPDATE),
             counted AS (
                 UPDATE {schema}.batches b SET
                     pending = GREATEST(b.pending - e.n, 0),
                     failed = b.failed + e.failures,
                     failed_ids = b.failed_ids || e.failed_ids,
                     cancelled_at = CASE WHEN e.failures > 0 AND NOT b.allow_failures
                                         THEN COALESCE(b.cancelled_at, c.ms) ELSE b.cancelled_at END,
                     finished_at = CASE WHEN b.pending - e.n <= 0
                                        THEN COALESCE(b.finished_at, c.ms) ELSE b.finished_at END,
                     catch_fired = b.catch_fired OR e.failures > 0,
                     finally_fired = b.finally_fired OR b.pending - e.n <= 0,
                     then_fired = b.then_fired OR (b.pending - e.n <= 0 AND b.failed + e.failures = 0)
                 FROM ended e, before o, clock c
                 WHERE b.id = e.batch_id AND o.id = b.id
                 RETURNING b.catch_fired AND NOT o.catch_fired AS fire_catch, b.catch_job,
                           b.finally_fired AND NOT o.finally_fired AS fire_finally, b.finally_job,
                           b.then_fired AND NOT o.then_fired AS fire_then, b.then_job),
             due AS (
                 SELECT cb.job, cb.ord
                 FROM counted,
                      LATERAL (VALUES (1, fire_catch, catch_job), (2, fire_finally, finally_job),
                                      (3, fire_then, then_job)) AS cb (ord, fire, job)
                 WHERE cb.fire AND cb.job IS NOT NULL),
             pushed AS (
                 INSERT INTO {schema}.jobs (id, queue, job, envelope, available_at, retry_until,
                                            created_at)
                 SELECT d.job ->> 'id', d.job ->> 'queue', d.job ->> 'job', d.job ->> 'envelope',
                        c.ms + (d.job ->> 'delay_ms')::bigint,
                        c.ms + (d.job ->> 'retry_for_ms')::bigint, c.ms
                 FROM due d, clock c
                 ORDER BY d.ord
                 ON CONFLICT (id) DO NOTHING
                 RETURNING 1)
             SELECT COUNT(*) FROM pushed",
        ))
        .bind(&batch_ids)
        .bind(&job_ids)
        .bind(&failed)
        .fetch_one(&mut *conn)
        .await?;
        Ok(u64::try_from(fired).unwrap_or(0))
    }

    /// Creates a batch and pushes its jobs in one transaction.
    pub(super) async fn create_batch_tx(
        &self,
        batch: &NewBatch,
        jobs: &[NewJob],
    ) -> StoreResult<Vec<PushOutcome>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(self.sql(
            "INSERT INTO {schema}.batches (id, name, total, pending, allow_failures, then_job,
                                           catch_job, finally_job, created_at)
             VALUES ($1, $2, 0, 0, $3, $4::jsonb, $5::jsonb, $6::jsonb, {schema}.now_ms())",
        ))
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

    /// Adds jobs to a batch in one transaction.
    pub(super) async fn add_to_batch_tx(
        &self,
        batch_id: &str,
        jobs: &[NewJob],
    ) -> StoreResult<Vec<PushOutcome>> {
        let mut tx = self.pool.begin().await?;
        let outcomes = self.add_to_batch_in(&mut tx, batch_id, jobs).await?;
        tx.commit().await?;
        self.woken_if_queued(&outcomes);
        Ok(outcomes)
    }

    /// Pushes jobs into a batch; only the jobs actually stored are counted, and a finished
    /// batch that gains jobs is open again.
    async fn add_to_batch_in(
        &self,
        conn: &mut PgConnection,
        batch_id: &str,
        jobs: &[NewJob],
    ) -> StoreResult<Vec<PushOutcome>> {
        // Locked until commit: a concurrent prune cannot delete the batch under its new jobs.
        let exists: Option<i32> =
            sqlx::query_scalar(self.sql("SELECT 1 FROM {schema}.batches WHERE id = $1 FOR UPDATE"))
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
            sqlx::query(self.sql(
                "UPDATE {schema}.batches
                 SET total = total + $2, pending = pending + $2, finished_at = NULL
                 WHERE id = $1",
            ))
            .bind(batch_id)
            .bind(i64::try_from(added).unwrap_or(i64::MAX))
            .execute(&mut *conn)
            .await?;
        }
        Ok(outcomes)
    }

    /// Wakes this process's idle workers if a push stored anything.
    pub(super) fn woken_if_queued(&self, outcomes: &[PushOutcome]) {
        if outcomes.contains(&PushOutcome::Queued) {
            self.wakeup.notify();
        }
    }

    /// One batch, or the newest `limit` ones.
    pub(super) async fn batches_where(
        &self,
        id: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<BatchInfo>> {
        let found = sqlx::query(self.sql(&format!(
            "SELECT {} FROM {{schema}}.batches WHERE $1::text IS NULL OR id = $1
             ORDER BY created_at DESC, id COLLATE \"C\" LIMIT $2",
            rows::BATCH_COLUMNS
        )))
        .bind(id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(found
            .iter()
            .map(rows::batch_info)
            .collect::<Result<_, _>>()?)
    }

    /// Marks a batch cancelled; false if there is none or it already was.
    pub(super) async fn cancel_batch_now(&self, id: &str) -> StoreResult<bool> {
        let n = sqlx::query(self.sql(
            "UPDATE {schema}.batches SET cancelled_at = {schema}.now_ms()
             WHERE id = $1 AND cancelled_at IS NULL",
        ))
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    /// Deletes the batch records `prune` selects.
    pub(super) async fn prune_batches_now(&self, prune: BatchPrune) -> StoreResult<u64> {
        let n = sqlx::query(self.sql(
            "WITH clock AS MATERIALIZED (SELECT {schema}.now_ms() AS ms)
             DELETE FROM {schema}.batches b USING clock c
             WHERE ($1::bigint IS NOT NULL AND b.finished_at IS NOT NULL AND b.finished_at < c.ms - $1)
                OR ($2::bigint IS NOT NULL AND b.finished_at IS NULL AND b.created_at < c.ms - $2)
                OR ($3::bigint IS NOT NULL AND b.cancelled_at IS NOT NULL AND b.created_at < c.ms - $3)",
        ))
        .bind(prune.finished.map(offset_ms))
        .bind(prune.unfinished.map(offset_ms))
        .bind(prune.cancelled.map(offset_ms))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n)
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
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(class_key)
            .bind(key)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// One sliding-window limiter call: drops the hits that left the window, counts the rest
    /// and records a hit as `mode` says, all under the key's lock.
    pub(super) async fn limit_tx(
        &self,
        key: &str,
        window: Duration,
        mode: LimitMode,
    ) -> StoreResult<LimitState> {
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
        let (count, oldest, hit_at, now): (i64, Option<i64>, Option<i64>, i64) =
            sqlx::query_as(self.sql(
                "WITH clock AS MATERIALIZED (SELECT {schema}.now_ms() AS ms),
                 pruned AS (
                     DELETE FROM {schema}.limits
                     WHERE key = $1 AND at <= (SELECT ms FROM clock) - $2),
                 live AS MATERIALIZED (
                     SELECT COUNT(*) AS n, MIN(at) AS oldest FROM {schema}.limits
                     WHERE key = $1 AND at > (SELECT ms FROM clock) - $2),
                 hit AS (
                     INSERT INTO {schema}.limits (key, at)
                     SELECT $1, c.ms FROM clock c, live WHERE live.n < $3
                     RETURNING at)
                 SELECT live.n, live.oldest, (SELECT at FROM hit), c.ms FROM live, clock c",
            ))
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
            resets_in: Duration::from_millis(u64::try_from(resets_in).unwrap_or(0)),
        })
    }

    /// Forgets every hit of `key`.
    pub(super) async fn clear_limit_now(&self, key: &str) -> StoreResult<()> {
        sqlx::query(self.sql("DELETE FROM {schema}.limits WHERE key = $1"))
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Takes a concurrency slot for a job its worker holds under `token`, under the key's lock
    /// so that two callers cannot both see a free slot and both take it.
    pub(super) async fn acquire_slot_tx(
        &self,
        worker_id: &str,
        request: &SlotRequest,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        self.lock_key_in(&mut tx, KeyClass::Slot, &request.key)
            .await?;
        // Slots of expired holders or dead workers are free: delete them first, in a statement
        // of their own, so that the count below (and a holder re-taking its own expired slot)
        // sees them gone.
        let held: bool = sqlx::query_scalar(self.sql(
            "WITH clock AS MATERIALIZED (SELECT {schema}.now_ms() AS ms),
             freed AS (
                 DELETE FROM {schema}.slots s USING clock c
                 WHERE s.key = $1
                   AND ((s.expires_at IS NOT NULL AND s.expires_at <= c.ms)
                        OR NOT EXISTS (SELECT 1 FROM {schema}.workers w
                                       WHERE w.id = s.worker_id AND w.expires_at > c.ms)))
             SELECT EXISTS (SELECT 1 FROM {schema}.jobs
                            WHERE id = $2 AND worker_id = $3 AND token = $4)",
        ))
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
        let got: bool = sqlx::query_scalar(self.sql(
            "WITH live AS MATERIALIZED (
                 SELECT COUNT(*) AS taken, COUNT(*) FILTER (WHERE holder = $2) AS mine
                 FROM {schema}.slots WHERE key = $1),
             took AS (
                 INSERT INTO {schema}.slots (key, holder, worker_id, expires_at)
                 SELECT $1, $2, $3, {schema}.now_ms() + $5 FROM live
                 WHERE live.mine = 0 AND live.taken < $4
                 RETURNING 1)
             SELECT live.mine > 0 OR EXISTS (SELECT 1 FROM took) FROM live",
        ))
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

    /// Records a reserved job's progress, fenced like a settlement.
    pub(super) async fn set_progress_now(
        &self,
        worker_id: &str,
        id: &str,
        token: i64,
        percent: u8,
        message: Option<&str>,
    ) -> StoreResult<bool> {
        let n = sqlx::query(self.sql(
            "UPDATE {schema}.jobs SET progress = $4, progress_message = $5
             WHERE id = $1 AND worker_id = $2 AND token = $3",
        ))
        .bind(id)
        .bind(worker_id)
        .bind(token)
        .bind(i64::from(percent.min(100)))
        .bind(message)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    /// A completed job's kept result.
    pub(super) async fn job_result_now(&self, id: &str) -> StoreResult<Option<CompletedJob>> {
        let row = sqlx::query(self.sql(&format!(
            "SELECT {} FROM {{schema}}.results WHERE id = $1",
            rows::RESULT_COLUMNS
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(rows::completed_job).transpose()?)
    }

    /// Deletes kept results older than `age`.
    pub(super) async fn prune_results_now(&self, age: Duration) -> StoreResult<u64> {
        let n = sqlx::query(
            self.sql("DELETE FROM {schema}.results WHERE completed_at < {schema}.now_ms() - $1"),
        )
        .bind(offset_ms(age))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n)
    }
}
