//! `QueueStore` on MySQL: pushing, claiming, settling, worker leases and reaping.
//!
//! Every write runs in a transaction that is run again on a deadlock or lock wait timeout (see
//! `retry`); the statements are in `sql/`, named after the method they serve.

use crate::store::Claim;
use crate::store::rules::duration_ms;
use crate::store::rules::{self, offset_ms};
use std::{sync::Arc, time::Duration};

use async_trait::async_trait;

use super::{
    MysqlStore, bump_counters,
    retry::{Begin, TxError, idempotent, in_transaction},
    slot, sql, sql_with, wakeups,
};
use crate::store::{
    Heartbeat, NewJob, PushOutcome, QueueStore, ReapReport, ReservedJob, Settlement, Store,
    StoreError, StoreResult, Wakeups, WorkerInfo,
};

mod push;
mod reap;
mod reserve;
mod settle;

pub(super) use push::{existing_ids, push_in, tag_jobs, untag_jobs};

#[async_trait]
impl QueueStore for MysqlStore {
    fn backend(&self) -> &'static str {
        "mysql"
    }

    async fn migrate(&self) -> StoreResult<()> {
        self.migrate_schema().await
    }

    async fn check_schema(&self) -> StoreResult<()> {
        self.check_schema_version().await
    }

    async fn reopen(&self) -> StoreResult<Arc<dyn Store>> {
        Ok(Arc::new(
            MysqlStore::with_options(self.options.clone()).await?,
        ))
    }

    async fn push(&self, jobs: &[NewJob]) -> StoreResult<Vec<PushOutcome>> {
        crate::store::check_jobs(jobs)?;
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let outcomes = in_transaction!(&self.pool, Begin::Write, |conn| {
            Ok::<_, TxError>(push_in(conn, jobs, None).await?)
        })?;
        self.woken_if_queued(&outcomes);
        Ok(outcomes)
    }

    async fn register_worker(&self, worker: &WorkerInfo, lease: Duration) -> StoreResult<()> {
        let queues = serde_json::to_string(&worker.queues)
            .map_err(|e| StoreError::Invalid(format!("cannot encode queue names: {e}")))?;
        idempotent!(&self.pool, |conn| {
            register_query(worker, &queues, lease).execute(conn).await
        })?;
        Ok(())
    }

    async fn register_worker_within(
        &self,
        worker: &WorkerInfo,
        lease: Duration,
        max: u32,
    ) -> StoreResult<bool> {
        let queues = serde_json::to_string(&worker.queues)
            .map_err(|e| StoreError::Invalid(format!("cannot encode queue names: {e}")))?;
        // The restart-epoch row, locked for the transaction, serializes the check and the
        // insert of workers starting together.
        in_transaction!(&self.pool, Begin::Write, |conn| {
            sqlx::query(include_str!("sql/register_worker_lock.sql"))
                .execute(&mut *conn)
                .await?;
            let lists: Vec<String> =
                sqlx::query_scalar(sql(include_str!("sql/live_worker_queues.sql")))
                    .fetch_all(&mut *conn)
                    .await?;
            let sharing = rules::workers_sharing(lists.iter().map(String::as_str), &worker.queues);
            if sharing >= max as usize {
                return Ok::<_, TxError>(false);
            }
            register_query(worker, &queues, lease)
                .execute(&mut *conn)
                .await?;
            Ok(true)
        })
    }

    async fn heartbeat(&self, worker_id: &str, lease: Duration) -> StoreResult<Heartbeat> {
        // Extending a lease twice is harmless, so a lost connection is simply retried.
        idempotent!(&self.pool, |conn| {
            // Rows matched, not rows changed (the driver asks for found rows), so an extension
            // within the same millisecond still counts.
            let kept = sqlx::query(sql(include_str!("sql/heartbeat.sql")))
                .bind(offset_ms(lease))
                .bind(worker_id)
                .execute(&mut *conn)
                .await?
                .rows_affected()
                > 0;
            let epoch: i64 = sqlx::query_scalar(include_str!("sql/restart_epoch.sql"))
                .fetch_optional(&mut *conn)
                .await?
                .unwrap_or(0);
            Ok(Heartbeat {
                lease_kept: kept,
                restart_epoch: epoch,
            })
        })
    }

    async fn deregister_worker(&self, worker_id: &str) -> StoreResult<()> {
        let returned = in_transaction!(&self.pool, Begin::Write, |conn| {
            let returned = sqlx::query(include_str!("sql/deregister_worker_jobs.sql"))
                .bind(worker_id)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            sqlx::query(include_str!("sql/deregister_worker.sql"))
                .bind(worker_id)
                .execute(&mut *conn)
                .await?;
            bump_counters(conn, slot(worker_id), 0, returned.min(1)).await?;
            Ok::<_, TxError>(returned)
        })?;
        if returned > 0 {
            self.wakeup.notify();
        }
        Ok(())
    }

    async fn reserve(&self, claim: Claim<'_>) -> StoreResult<Vec<ReservedJob>> {
        if claim.asks_nothing() {
            return Ok(Vec::new());
        }
        let (worker_id, queues, limit) = (claim.worker_id, claim.queues, claim.limit);
        in_transaction!(&self.pool, Begin::Write, |conn| {
            Ok::<_, TxError>(reserve::claim(conn, worker_id, queues, limit).await?)
        })
    }

    async fn settle(&self, worker_id: &str, settlements: &[Settlement]) -> StoreResult<Vec<bool>> {
        if settlements.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self
            .settle_then_claim(worker_id, settlements, &[], 0)
            .await?
            .0)
    }

    async fn settle_and_reserve(
        &self,
        settlements: &[Settlement],
        claim: Claim<'_>,
    ) -> StoreResult<(Vec<bool>, Vec<ReservedJob>)> {
        let (worker_id, queues, limit) = (claim.worker_id, claim.queues, claim.limit);
        if settlements.is_empty() {
            return Ok((Vec::new(), self.reserve(claim).await?));
        }
        // The worker's hot path: ack batch k and claim batch k+1 in one transaction.
        self.settle_then_claim(worker_id, settlements, queues, limit)
            .await
    }

    async fn reap(&self, max_recoveries: u32) -> StoreResult<ReapReport> {
        let (report, pushed) = in_transaction!(&self.pool, Begin::Write, |conn| {
            reap::reap_in(conn, max_recoveries).await
        })?;
        if report.recovered > 0 || pushed > 0 {
            self.wakeup.notify();
        }
        Ok(report)
    }

    async fn next_available_in(&self, queues: &[String]) -> StoreResult<Option<Duration>> {
        if queues.is_empty() {
            return Ok(None);
        }
        // Idle workers ask this often: one index dive per queue (the first unheld job in
        // available order), never a scan of the backlog.
        let one = include_str!("sql/next_available_in_queue.sql").trim_end();
        let statement = sql_with(
            include_str!("sql/next_available_in.sql"),
            &[("queues", &vec![one; queues.len()].join(" UNION ALL "))],
        );
        let wait: Option<i64> = idempotent!(&self.pool, |conn| {
            let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(statement.0.clone()));
            for queue in queues {
                query = query.bind(queue);
            }
            query.fetch_one(conn).await
        })?;
        Ok(wait.map(duration_ms))
    }

    fn wakeups(&self) -> Wakeups {
        // A poisoned lock only means another caller panicked mid-start; the slot is still sound.
        let mut poller = self.poller.lock().unwrap_or_else(|e| e.into_inner());
        if !poller.as_ref().is_some_and(wakeups::Poller::is_running) {
            *poller = wakeups::Poller::start(self.options.clone(), self.wakeup.clone());
        }
        self.wakeup.subscribe()
    }

    async fn restart_epoch(&self) -> StoreResult<i64> {
        let epoch: Option<i64> = idempotent!(&self.pool, |conn| {
            sqlx::query_scalar(include_str!("sql/restart_epoch.sql"))
                .fetch_optional(conn)
                .await
        })?;
        Ok(epoch.unwrap_or(0))
    }
}

/// Registers (or renews) a worker's row (`queues` as JSON), its lease starting now by the
/// server's clock.
fn register_query<'q>(
    worker: &'q WorkerInfo,
    queues: &'q str,
    lease: Duration,
) -> sqlx::query::Query<'q, sqlx::MySql, sqlx::mysql::MySqlArguments> {
    sqlx::query(sql(include_str!("sql/register_worker.sql")))
        .bind(&worker.id)
        .bind(&worker.host)
        .bind(i64::from(worker.pid))
        .bind(queues)
        .bind(offset_ms(lease))
        .bind(offset_ms(lease))
        .bind(offset_ms(lease))
}

impl MysqlStore {
    /// Settles, claims and bumps the counters in one transaction: the body of `settle` and
    /// `settle_and_reserve`, which differ only in whether they claim.
    async fn settle_then_claim(
        &self,
        worker_id: &str,
        settlements: &[Settlement],
        queues: &[String],
        limit: usize,
    ) -> StoreResult<(Vec<bool>, Vec<ReservedJob>)> {
        let settlements = &rules::storable(settlements)[..];
        let mut fast = true;
        let (settled, jobs) = in_transaction!(&self.pool, Begin::Write, |conn| {
            let settled = settle::settle(conn, worker_id, settlements, &mut fast).await?;
            let jobs = reserve::claim(conn, worker_id, queues, limit).await?;
            bump_counters(
                conn,
                slot(worker_id),
                settled.completed,
                settled.released.min(1),
            )
            .await?;
            Ok::<_, TxError>((settled, jobs))
        })?;
        if settled.released > 0 || settled.pushed > 0 {
            self.wakeup.notify();
        }
        Ok((settled.applied, jobs))
    }
}
