//! The queue core on PostgreSQL: pushes, claims, settlements (in [`settle`]), worker leases,
//! the reaper and the restart epoch.

use crate::store::Claim;
use crate::store::rules::{self, count, duration_ms, offset_ms};
use crate::store::wakeup::Listener;
use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use sqlx::PgConnection;

use super::{PostgresStore, fenced_ids, wakeups};
use crate::store::sql::fnv1a;
use crate::store::{
    Heartbeat, NewJob, PushOutcome, QueueStore, ReapReport, ReservedJob, Settlement, Store,
    StoreResult, Wakeups, WorkerInfo,
    sql::{outcomes::push_outcomes, rows},
};

mod settle;

use settle::Ended;

#[async_trait]
impl QueueStore for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn migrate(&self) -> StoreResult<()> {
        self.migrate_schema().await
    }

    async fn check_schema(&self) -> StoreResult<()> {
        self.check_schema_version().await
    }

    async fn reopen(&self) -> StoreResult<Arc<dyn Store>> {
        Ok(Arc::new(
            PostgresStore::open_in_schema(&self.url, &self.schema).await?,
        ))
    }

    async fn push(&self, jobs: &[NewJob]) -> StoreResult<Vec<PushOutcome>> {
        crate::store::check_jobs(jobs)?;
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        // One statement in autocommit: the push is durable once it returns.
        let mut conn = self.unit(&self.pool).await?;
        let outcomes = self.push_in(&mut conn, jobs, None).await?;
        conn.done().await?;
        self.woken_if_queued(&outcomes);
        Ok(outcomes)
    }

    async fn register_worker(&self, worker: &WorkerInfo, lease: Duration) -> StoreResult<()> {
        let mut conn = self.unit(&self.pool).await?;
        self.register_query(worker, lease)
            .execute(&mut *conn)
            .await?;
        conn.done().await?;
        Ok(())
    }

    async fn register_worker_within(
        &self,
        worker: &WorkerInfo,
        lease: Duration,
        max: u32,
    ) -> StoreResult<bool> {
        // A transaction-scoped advisory lock per schema serializes the check and the insert
        // of workers starting together.
        let mut tx = self.pool.begin().await?;
        let key = fnv1a(format!("spool max-workers {}", self.schema).as_bytes()) as i64;
        self.query(include_str!("sql/advisory_xact_lock.sql"))
            .bind(key)
            .execute(&mut *tx)
            .await?;
        let sharing: i64 = self
            .query_scalar(include_str!("sql/live_workers_sharing.sql"))
            .bind(&worker.queues)
            .fetch_one(&mut *tx)
            .await?;
        if sharing >= i64::from(max) {
            tx.rollback().await?;
            return Ok(false);
        }
        self.register_query(worker, lease).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn heartbeat(&self, worker_id: &str, lease: Duration) -> StoreResult<Heartbeat> {
        // One round trip: extend the lease and read the restart epoch together.
        let mut conn = self.unit(&self.pool).await?;
        let (kept, epoch): (bool, i64) = self
            .query_as(include_str!("sql/heartbeat.sql"))
            .bind(worker_id)
            .bind(offset_ms(lease))
            .fetch_one(&mut *conn)
            .await?;
        conn.done().await?;
        Ok(Heartbeat {
            lease_kept: kept,
            restart_epoch: epoch,
        })
    }

    async fn deregister_worker(&self, worker_id: &str) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        let returned = self
            .query(include_str!("sql/deregister_worker_release.sql"))
            .bind(worker_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        self.query(include_str!("sql/deregister_worker.sql"))
            .bind(worker_id)
            .execute(&mut *tx)
            .await?;
        if returned > 0 {
            self.notify_in(&mut tx).await?;
        }
        tx.commit().await?;
        if returned > 0 {
            self.wakeup.notify();
        }
        Ok(())
    }

    async fn reserve(&self, claim: Claim<'_>) -> StoreResult<Vec<ReservedJob>> {
        let (worker_id, queues, limit) = (claim.worker_id, claim.queues, claim.limit);
        let mut conn = self.unit(&self.pool).await?;
        let jobs = self.reserve_in(&mut conn, worker_id, queues, limit).await?;
        conn.done().await?;
        Ok(jobs)
    }

    async fn settle(&self, worker_id: &str, settlements: &[Settlement]) -> StoreResult<Vec<bool>> {
        if settlements.is_empty() {
            return Ok(Vec::new());
        }
        let settlements = &rules::storable(settlements)[..];
        let mut tx = self.pool.begin().await?;
        let (applied, wake) = self.settle_in(&mut tx, worker_id, settlements).await?;
        tx.commit().await?;
        if wake {
            self.wakeup.notify();
        }
        Ok(applied)
    }

    async fn settle_and_reserve(
        &self,
        settlements: &[Settlement],
        claim: Claim<'_>,
    ) -> StoreResult<(Vec<bool>, Vec<ReservedJob>)> {
        let (worker_id, queues, limit) = (claim.worker_id, claim.queues, claim.limit);
        let settlements = &rules::storable(settlements)[..];
        let plain_completions = settlements.iter().all(|st| {
            matches!(st, Settlement::Complete { follow_ups, result, .. }
                if follow_ups.is_empty() && result.is_none())
        });
        if !settlements.is_empty() && plain_completions && queues.len() == 1 {
            // The common case (a busy worker on one queue): ack and claim in one statement,
            // unless a settled job belongs to a batch (then nothing was done: settle below).
            if let Some(done) = self
                .complete_and_claim(worker_id, settlements, &queues[0], limit)
                .await?
            {
                return Ok(done);
            }
        }
        if settlements.is_empty() {
            // A lone claim needs no transaction around it: one round trip per queue.
            let mut conn = self.hot_unit().await?;
            let jobs = self.reserve_in(&mut conn, worker_id, queues, limit).await?;
            conn.done().await?;
            return Ok((Vec::new(), jobs));
        }
        // On the hot pool (`synchronous_commit = off`): see [`PostgresStore::hot`] for why
        // the side effects committed here may be lost only together with the settlement.
        let mut tx = self.begin_hot().await?;
        let (applied, wake) = self.settle_in(&mut tx, worker_id, settlements).await?;
        let jobs = self.reserve_in(&mut tx, worker_id, queues, limit).await?;
        tx.commit().await?;
        if wake {
            self.wakeup.notify();
        }
        Ok((applied, jobs))
    }

    async fn reap(&self, max_recoveries: u32) -> StoreResult<ReapReport> {
        // One statement, so one clock reading and one snapshot decide which workers are dead.
        // The jobs are matched on (seq, worker, token): if the holder settles a job while this
        // runs, PostgreSQL re-checks the updated row and the stale match drops out.
        let mut tx = self.pool.begin().await?;
        // Reserved jobs are few and the partial holder index finds them, but under fast churn the
        // index fills with entries of jobs already completed until vacuum runs, and with lagging
        // statistics the planner scans the table or does a bitmap scan (measured: ~1 s per reap
        // at a million jobs). A plain index scan marks dead entries as it passes, so the next
        // reap skips them (~5 ms): forbid the other plans.
        for setting in [
            include_str!("sql/reap_no_seqscan.sql"),
            include_str!("sql/reap_no_bitmapscan.sql"),
        ] {
            self.query(setting).execute(&mut *tx).await?;
        }
        // Poison pills fail like any final failure: recorded with their batch, their locks
        // released, counted in their batch. The slots of dead workers are freed with them.
        //
        // The poison-pill rule (a job whose worker is lost for the `max_recoveries`-th time
        // fails instead of going back to the queue) is written in the statement
        // (`recoveries + 1 >= $1`), not decided in Rust: the same statement finds the lost
        // jobs and fails or recovers each under its (seq, worker, token) fence, and deciding
        // in between would take a round trip per reap and a window in which the holder
        // settles the job.
        let (failed, recovered, workers_removed, poisoned_ids, poisoned_batches): (
            i64,
            i64,
            i64,
            Vec<String>,
            Vec<String>,
        ) = self
            .query_as(include_str!("sql/reap.sql"))
            .bind(i64::from(max_recoveries))
            .fetch_one(&mut *tx)
            .await?;
        let ended: Vec<Ended> = poisoned_ids
            .into_iter()
            .zip(poisoned_batches)
            .map(|(job_id, batch_id)| Ended {
                batch_id,
                job_id,
                failed: true,
            })
            .collect();
        let wake = recovered > 0 || self.count_in_batches_in(&mut tx, &ended).await? > 0;
        if wake {
            self.notify_in(&mut tx).await?;
        }
        tx.commit().await?;
        if wake {
            self.wakeup.notify();
        }
        Ok(ReapReport {
            recovered: count(recovered),
            failed: count(failed),
            workers_removed: count(workers_removed),
        })
    }

    async fn next_available_in(&self, queues: &[String]) -> StoreResult<Option<Duration>> {
        // Idle workers ask this often: one short walk of the ready index per queue instead of
        // a scan of the whole backlog.
        let mut conn = self.unit(&self.pool).await?;
        let wait: Option<i64> = self
            .query_scalar(include_str!("sql/next_available_in.sql"))
            .bind(queues)
            .fetch_one(&mut *conn)
            .await?;
        conn.done().await?;
        Ok(wait.map(duration_ms))
    }

    fn wakeups(&self) -> Wakeups {
        Listener::keep_running(&self.listener, || wakeups::start(self));
        self.wakeup.subscribe()
    }

    async fn restart_epoch(&self) -> StoreResult<i64> {
        let mut conn = self.unit(&self.pool).await?;
        let epoch: Option<i64> = self
            .query_scalar(include_str!("sql/restart_epoch.sql"))
            .fetch_optional(&mut *conn)
            .await?;
        conn.done().await?;
        Ok(epoch.unwrap_or(0))
    }
}

impl PostgresStore {
    /// Registers (or renews) a worker's row, its lease starting now by the server's clock.
    fn register_query<'q>(
        &self,
        worker: &'q WorkerInfo,
        lease: Duration,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        self.query(include_str!("sql/register_worker.sql"))
            .bind(&worker.id)
            .bind(&worker.host)
            .bind(i64::from(worker.pid))
            .bind(&worker.queues)
            .bind(offset_ms(lease))
    }

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
        let tags: Vec<Option<String>> = jobs.iter().map(NewJob::tags_column).collect();
        // One statement, so one round trip, for the whole batch. Locks first: the earliest job
        // of each key in the batch tries to take it (DISTINCT ON), inserting it or replacing an
        // expired holder; a live holder is left alone and its row locked, so a concurrent pusher
        // of the same key waits for this transaction and then sees the lock. A job is stored
        // only if it needs no lock or took its own. ORDER BY ord keeps `seq` in push order, a
        // repeated id is skipped by ON CONFLICT, and the notification is queued once if
        // anything was inserted.
        let inserted: Vec<(String,)> = self
            .query_as(include_str!("sql/push.sql"))
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
            .bind(&tags)
            .fetch_all(&mut *conn)
            .await?;
        Ok(push_outcomes(&ids, &fenced_ids(inserted)))
    }

    /// Reserves on `conn` (inside the caller's transaction, or autocommit).
    async fn reserve_in(
        &self,
        conn: &mut PgConnection,
        worker_id: &str,
        queues: &[String],
        limit: usize,
    ) -> StoreResult<Vec<ReservedJob>> {
        // The candidates are picked in a materialised CTE so that they are chosen (and locked)
        // exactly once; SKIP LOCKED lets concurrent reservers take different jobs instead of
        // queueing behind each other. "Unique until processing" locks are released with the
        // claim.
        let sql = self.sql(include_str!("sql/reserve.sql"));
        let mut out = Vec::new();
        for queue in queues {
            let want = limit.saturating_sub(out.len());
            if want == 0 {
                break;
            }
            let start = self.cursors.start(queue);
            let found = sqlx::query(sqlx::AssertSqlSafe(sql.0.clone()))
                .persistent(!self.pooled)
                .bind(worker_id)
                .bind(queue)
                .bind(i64::try_from(want).unwrap_or(i64::MAX))
                .bind(start.0)
                .bind(start.1)
                .fetch_all(&mut *conn)
                .await?;
            let found = found
                .iter()
                .map(rows::reserved)
                .collect::<Result<Vec<_>, _>>()?;
            self.cursors.claimed(queue, start, want, &found);
            out.extend(rows::in_claim_order(found));
        }
        Ok(out)
    }
}
