//! Worker leases: registering, heartbeats, deregistering, and reaping the jobs of workers
//! whose lease expired.

use std::time::Duration;

use sqlx::{MySqlConnection, Row};

use super::{
    MysqlStore,
    batches::{self, Ended},
    counters,
    retry::{Begin, TxError, idempotent, in_transaction},
    sql::{MAX_OFFSET_MS, ROWS_PER_STATEMENT, list, slot, sql},
    workflow,
};
use crate::{
    duration::millis,
    store::{Heartbeat, ReapReport, StoreResult, WorkerInfo},
};

/// The counter slot the reaper and operator commands bump (workers use their own).
pub(super) const ADMIN_SLOT: i64 = 0;

fn offset_ms(d: Duration) -> i64 {
    millis(d).min(MAX_OFFSET_MS)
}

impl MysqlStore {
    pub(super) async fn register(&self, worker: &WorkerInfo, lease: Duration) -> StoreResult<()> {
        let queues = serde_json::to_string(&worker.queues)
            .map_err(|e| crate::StoreError::Invalid(format!("cannot encode queue names: {e}")))?;
        idempotent!(&self.pool, |conn| {
            sqlx::query(sql(
                "INSERT INTO spool_workers (id, host, pid, queues, started_at, expires_at)
                 VALUES (?, ?, ?, ?, {now}, {now} + ?)
                 ON DUPLICATE KEY UPDATE expires_at = {now} + ?",
            ))
            .bind(&worker.id)
            .bind(&worker.host)
            .bind(i64::from(worker.pid))
            .bind(&queues)
            .bind(offset_ms(lease))
            .bind(offset_ms(lease))
            .execute(conn)
            .await
        })?;
        Ok(())
    }

    pub(super) async fn beat(&self, worker_id: &str, lease: Duration) -> StoreResult<Heartbeat> {
        // Extending a lease twice is harmless, so a lost connection is simply retried.
        idempotent!(&self.pool, |conn| {
            // Rows matched, not rows changed (the driver asks for found rows), so an extension
            // within the same millisecond still counts.
            let kept = sqlx::query(sql(
                "UPDATE spool_workers SET expires_at = {now} + ? WHERE id = ?",
            ))
            .bind(offset_ms(lease))
            .bind(worker_id)
            .execute(&mut *conn)
            .await?
            .rows_affected()
                > 0;
            let epoch: i64 = sqlx::query_scalar(
                "SELECT value FROM spool_meta WHERE name = 'restart_epoch' AND slot = 0",
            )
            .fetch_optional(&mut *conn)
            .await?
            .unwrap_or(0);
            Ok(Heartbeat {
                lease_kept: kept,
                restart_epoch: epoch,
            })
        })
    }

    pub(super) async fn deregister(&self, worker_id: &str) -> StoreResult<()> {
        let returned = in_transaction!(&self.pool, Begin::Write, |conn| {
            let returned = sqlx::query(
                "UPDATE spool_jobs
                 SET worker_id = NULL, reserved_at = NULL, attempts = attempts - 1
                 WHERE worker_id = ?",
            )
            .bind(worker_id)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            sqlx::query("DELETE FROM spool_workers WHERE id = ?")
                .bind(worker_id)
                .execute(&mut *conn)
                .await?;
            counters::bump(conn, slot(worker_id), 0, returned.min(1)).await?;
            Ok::<_, TxError>(returned)
        })?;
        if returned > 0 {
            self.wakeup.notify();
        }
        Ok(())
    }

    pub(super) async fn reap_lost(&self, max_recoveries: u32) -> StoreResult<ReapReport> {
        let (report, pushed) = in_transaction!(&self.pool, Begin::Write, |conn| {
            reap_in(conn, max_recoveries).await
        })?;
        if report.recovered > 0 || pushed > 0 {
            self.wakeup.notify();
        }
        Ok(report)
    }
}

/// A reserved job whose worker's lease is gone.
struct Lost {
    seq: i64,
    worker_id: String,
    token: i64,
    recoveries: i64,
    id: String,
    batch_id: Option<String>,
    unique_key: Option<String>,
}

/// Reaps on `conn`, inside the caller's transaction; returns the report and how many batch
/// callbacks were pushed.
async fn reap_in(
    conn: &mut MySqlConnection,
    max_recoveries: u32,
) -> Result<(ReapReport, u64), TxError> {
    // A plain read first (no locks), through the holder index: the candidates.
    let candidates = sqlx::query(sql("SELECT j.seq, j.worker_id, j.token, j.recoveries,
                j.id, j.batch_id, j.unique_key
         FROM spool_jobs j
         LEFT JOIN spool_workers w ON w.id = j.worker_id AND w.expires_at > {now}
         WHERE j.worker_id IS NOT NULL AND w.id IS NULL
         ORDER BY j.seq"))
    .fetch_all(&mut *conn)
    .await?;
    let mut lost = Vec::with_capacity(candidates.len());
    for row in &candidates {
        lost.push(Lost {
            seq: row.try_get(0)?,
            worker_id: row.try_get(1)?,
            token: row.try_get(2)?,
            recoveries: row.try_get(3)?,
            id: row.try_get(4)?,
            batch_id: row.try_get(5)?,
            unique_key: row.try_get(6)?,
        });
    }
    // Then lock them by primary key in ascending order and keep those still held under the
    // same worker and token: a late settle by the holder wins, and the fence drops the rest.
    let mut still_lost = Vec::with_capacity(lost.len());
    for chunk in lost.chunks(ROWS_PER_STATEMENT) {
        let statement = format!(
            "SELECT seq, worker_id, token FROM spool_jobs WHERE seq IN ({}) ORDER BY seq FOR UPDATE",
            list(chunk.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(statement));
        for job in chunk {
            query = query.bind(job.seq);
        }
        let locked = query.fetch_all(&mut *conn).await?;
        for row in &locked {
            let seq: i64 = row.try_get(0)?;
            let worker: Option<String> = row.try_get(1)?;
            let token: i64 = row.try_get(2)?;
            let same_holder = |job: &&Lost| {
                job.seq == seq
                    && worker.as_deref() == Some(job.worker_id.as_str())
                    && token == job.token
            };
            still_lost.extend(chunk.iter().find(same_holder));
        }
    }
    let cap = i64::from(max_recoveries);
    let (poisoned, recovered): (Vec<&Lost>, Vec<&Lost>) = still_lost
        .into_iter()
        .partition(|job| job.recoveries + 1 >= cap);
    for chunk in poisoned.chunks(ROWS_PER_STATEMENT) {
        let seqs = list(chunk.len());
        let mut record = sqlx::query(sql(&format!(
            "REPLACE INTO spool_failed (id, queue, job, envelope, error, causes, attempts, failed_at,
                                        batch_id)
             SELECT id, queue, job, envelope,
                    CONCAT('worker lost ', recoveries + 1, ' times while running this job'),
                    JSON_ARRAY(COALESCE(last_error, 'no error recorded before the losses')),
                    attempts, {{now}}, batch_id
             FROM spool_jobs WHERE seq IN ({seqs})"
        )));
        let mut delete = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM spool_jobs WHERE seq IN ({seqs})"
        )));
        for job in chunk {
            record = record.bind(job.seq);
            delete = delete.bind(job.seq);
        }
        record.execute(&mut *conn).await?;
        delete.execute(&mut *conn).await?;
    }
    // Poison pills fail like any final failure: their "until done" locks are released and they
    // count as failures in their batches.
    let locks: Vec<(&str, &str)> = poisoned
        .iter()
        .filter_map(|job| Some((job.unique_key.as_deref()?, job.id.as_str())))
        .collect();
    workflow::release_locks(conn, &locks, "done").await?;
    let ended: Vec<Ended> = poisoned
        .iter()
        .filter_map(|job| {
            Some(Ended {
                batch_id: job.batch_id.clone()?,
                job_id: job.id.clone(),
                failed: true,
            })
        })
        .collect();
    let pushed = batches::count_in_batches(conn, &ended).await?;
    // The slots of dead workers are freed below, all at once.
    for chunk in recovered.chunks(ROWS_PER_STATEMENT) {
        let mut query = sqlx::query(sql(&format!(
            "UPDATE spool_jobs
             SET worker_id = NULL, reserved_at = NULL, took_slot = NULL, available_at = {{now}},
                 attempts = attempts - 1, recoveries = recoveries + 1
             WHERE seq IN ({})",
            list(chunk.len())
        )));
        for job in chunk {
            query = query.bind(job.seq);
        }
        query.execute(&mut *conn).await?;
    }
    let removed = sqlx::query(sql("DELETE FROM spool_workers WHERE expires_at <= {now}"))
        .execute(&mut *conn)
        .await?
        .rows_affected();
    workflow::reap_workflow_state(conn).await?;
    counters::bump(conn, ADMIN_SLOT, 0, u64::from(!recovered.is_empty())).await?;
    let report = ReapReport {
        recovered: recovered.len() as u64,
        failed: poisoned.len() as u64,
        workers_removed: removed,
    };
    Ok((report, pushed))
}
