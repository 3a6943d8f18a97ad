//! Reads for the worker's idle loop and for `spool status`, `jobs`, `job` and `failed`.

use std::{collections::HashMap, time::Duration};

use sqlx::{MySql, QueryBuilder, Row};

use super::{
    MysqlStore,
    retry::{Begin, TxError, idempotent, in_transaction},
    sql::{NOW_MS, sql},
};
use crate::store::{
    FailedFilter, FailedJob, JobFilter, JobInfo, JobState, QueueStats, Stats, StoreResult,
    WorkerStatus, sql::rows,
};

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl MysqlStore {
    pub(super) async fn next_due(&self, queues: &[String]) -> StoreResult<Option<Duration>> {
        if queues.is_empty() {
            return Ok(None);
        }
        // Idle workers ask this often: one index dive per queue (the first unheld job in
        // available order), never a scan of the backlog.
        let one = "SELECT (SELECT available_at FROM spool_jobs
                           WHERE queue = ? AND worker_id IS NULL
                           ORDER BY available_at LIMIT 1) AS first";
        let statement = format!(
            "SELECT MIN(first) - {NOW_MS} FROM ({}) AS due",
            vec![one; queues.len()].join(" UNION ALL ")
        );
        let wait: Option<i64> = idempotent!(&self.pool, |conn| {
            let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(statement.clone()));
            for queue in queues {
                query = query.bind(queue);
            }
            query.fetch_one(conn).await
        })?;
        Ok(wait.map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0))))
    }

    pub(super) async fn stats_snapshot(&self) -> StoreResult<Stats> {
        // One snapshot, so the counts agree with each other.
        in_transaction!(&self.pool, Begin::Snapshot, |conn| {
            let queue_rows = sqlx::query(sql("SELECT j.queue,
                        CAST(SUM(j.worker_id IS NULL AND j.available_at <= c.ms) AS SIGNED),
                        CAST(SUM(j.worker_id IS NULL AND j.available_at > c.ms) AS SIGNED),
                        CAST(SUM(j.worker_id IS NOT NULL) AS SIGNED),
                        c.ms - MIN(CASE WHEN j.worker_id IS NULL AND j.available_at <= c.ms
                                        THEN j.available_at END)
                 FROM spool_jobs j, (SELECT {now} AS ms) c
                 GROUP BY j.queue, c.ms
                 ORDER BY j.queue"))
            .fetch_all(&mut *conn)
            .await?;
            let mut queues = Vec::with_capacity(queue_rows.len());
            for row in &queue_rows {
                let oldest: Option<i64> = row.try_get(4)?;
                queues.push(QueueStats {
                    name: row.try_get(0)?,
                    pending: count(row.try_get(1)?),
                    delayed: count(row.try_get(2)?),
                    reserved: count(row.try_get(3)?),
                    oldest_ready_age_ms: oldest.map(count).unwrap_or(0),
                });
            }
            let (processed, failed): (i64, i64) = sqlx::query_as(
                "SELECT (SELECT CAST(COALESCE(SUM(value), 0) AS SIGNED) FROM spool_meta
                         WHERE name = 'processed'),
                        (SELECT COUNT(*) FROM spool_failed)",
            )
            .fetch_one(&mut *conn)
            .await?;
            let mut busy: HashMap<String, Vec<String>> = HashMap::new();
            let held = sqlx::query(
                "SELECT worker_id, id FROM spool_jobs WHERE worker_id IS NOT NULL ORDER BY seq",
            )
            .fetch_all(&mut *conn)
            .await?;
            for row in &held {
                busy.entry(row.try_get(0)?)
                    .or_default()
                    .push(row.try_get(1)?);
            }
            let worker_rows = sqlx::query(sql("SELECT id, host, pid, queues FROM spool_workers
                 WHERE expires_at > {now}
                 ORDER BY started_at, id"))
            .fetch_all(&mut *conn)
            .await?;
            let mut workers = Vec::with_capacity(worker_rows.len());
            for row in &worker_rows {
                let id: String = row.try_get(0)?;
                let queues: String = row.try_get(3)?;
                workers.push(WorkerStatus {
                    busy: busy.remove(&id).unwrap_or_default(),
                    id,
                    host: row.try_get(1)?,
                    pid: u32::try_from(row.try_get::<i64, _>(2)?).unwrap_or(0),
                    queues: serde_json::from_str(&queues).unwrap_or_default(),
                });
            }
            Ok::<_, TxError>(Stats {
                queues,
                processed: count(processed),
                failed: count(failed),
                workers,
            })
        })
    }

    pub(super) async fn list_jobs(&self, filter: &JobFilter) -> StoreResult<Vec<JobInfo>> {
        idempotent!(&self.pool, |conn| {
            let mut q = QueryBuilder::<MySql>::new(
                sql(&format!(
                    "SELECT {}, c.ms FROM spool_jobs, (SELECT {{now}} AS ms) c WHERE true",
                    rows::JOB_COLUMNS
                ))
                .0,
            );
            if let Some(queue) = &filter.queue {
                q.push(" AND queue = ").push_bind(queue);
            }
            match filter.state {
                Some(JobState::Pending) => {
                    q.push(" AND worker_id IS NULL AND available_at <= c.ms");
                }
                Some(JobState::Delayed) => {
                    q.push(" AND worker_id IS NULL AND available_at > c.ms");
                }
                Some(JobState::Reserved) => {
                    q.push(" AND worker_id IS NOT NULL");
                }
                None => {}
            }
            q.push(" ORDER BY available_at, seq LIMIT ")
                .push_bind(i64::from(filter.limit.unwrap_or(100)));
            let found = q.build().fetch_all(conn).await?;
            found.iter().map(rows::job_info).collect()
        })
    }

    pub(super) async fn one_job(&self, id: &str) -> StoreResult<Option<JobInfo>> {
        idempotent!(&self.pool, |conn| {
            let row = sqlx::query(sql(&format!(
                "SELECT {}, {{now}} FROM spool_jobs WHERE id = ?",
                rows::JOB_COLUMNS
            )))
            .bind(id)
            .fetch_optional(conn)
            .await?;
            row.as_ref().map(rows::job_info).transpose()
        })
    }

    pub(super) async fn list_failed(
        &self,
        filter: &FailedFilter,
    ) -> StoreResult<(Vec<FailedJob>, u64)> {
        in_transaction!(&self.pool, Begin::Snapshot, |conn| {
            let found = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {} FROM spool_failed WHERE (? IS NULL OR queue = ?)
                 ORDER BY failed_at DESC, id LIMIT ?",
                rows::FAILED_COLUMNS
            )))
            .bind(&filter.queue)
            .bind(&filter.queue)
            .bind(i64::from(filter.limit.unwrap_or(100)))
            .fetch_all(&mut *conn)
            .await?;
            let total: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM spool_failed WHERE (? IS NULL OR queue = ?)",
            )
            .bind(&filter.queue)
            .bind(&filter.queue)
            .fetch_one(&mut *conn)
            .await?;
            let jobs = found
                .iter()
                .map(rows::failed_job)
                .collect::<Result<_, _>>()?;
            Ok::<_, TxError>((jobs, count(total)))
        })
    }

    pub(super) async fn one_failed(&self, id: &str) -> StoreResult<Option<FailedJob>> {
        idempotent!(&self.pool, |conn| {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {} FROM spool_failed WHERE id = ?",
                rows::FAILED_COLUMNS
            )))
            .bind(id)
            .fetch_optional(conn)
            .await?;
            row.as_ref().map(rows::failed_job).transpose()
        })
    }
}
