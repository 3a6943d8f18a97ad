//! `AdminStore` on MySQL: the reads behind `spool status`, `jobs`, `job` and `failed`, and the
//! operator commands (deleting, running and clearing jobs, the failed store, restarts).

use crate::store::rules::count;
use crate::store::sql::job_filter::push_job_filter;
use std::{collections::HashMap, time::Duration};

use async_trait::async_trait;
use sqlx::{MySql, QueryBuilder, Row};

use super::{
    ADMIN_SLOT, MysqlStore, bump_counters,
    retry::{Begin, TxError, idempotent, in_transaction},
    sql, sql_with,
};
use crate::store::{
    AdminStore, CompletedJob, ExpiredWorker, FailedFilter, FailedJob, JobFilter, JobInfo,
    JobSearch, Page, QueueStats, RetrySelector, Stats, StoreResult, WorkerStatus, sql::rows,
};

mod retry_failed;

#[async_trait]
impl AdminStore for MysqlStore {
    async fn stats(&self) -> StoreResult<Stats> {
        // One snapshot, so the counts agree with each other.
        in_transaction!(&self.pool, Begin::Snapshot, |conn| {
            let queue_rows = sqlx::query(sql(include_str!("sql/stats_queues.sql")))
                .fetch_all(&mut *conn)
                .await?;
            let mut queues = Vec::with_capacity(queue_rows.len());
            for row in &queue_rows {
                let oldest: Option<i64> = row.try_get(4)?;
                queues.push(QueueStats {
                    paused: false,
                    name: row.try_get(0)?,
                    pending: count(row.try_get(1)?),
                    delayed: count(row.try_get(2)?),
                    reserved: count(row.try_get(3)?),
                    oldest_ready_age_ms: oldest.map(count).unwrap_or(0),
                });
            }
            let (processed, failed): (i64, i64) =
                sqlx::query_as(include_str!("sql/stats_totals.sql"))
                    .fetch_one(&mut *conn)
                    .await?;
            let mut busy: HashMap<String, Vec<String>> = HashMap::new();
            let held = sqlx::query(include_str!("sql/stats_busy.sql"))
                .fetch_all(&mut *conn)
                .await?;
            for row in &held {
                busy.entry(row.try_get(0)?)
                    .or_default()
                    .push(row.try_get(1)?);
            }
            let worker_rows = sqlx::query(sql(include_str!("sql/stats_workers.sql")))
                .fetch_all(&mut *conn)
                .await?;
            let mut workers = Vec::with_capacity(worker_rows.len());
            for row in &worker_rows {
                let id: String = row.try_get(0)?;
                let queues: String = row.try_get(3)?;
                let (last_seen_ms, lease_ms) =
                    WorkerStatus::seen(row.try_get(4)?, row.try_get(5)?, row.try_get(6)?);
                workers.push(WorkerStatus {
                    last_seen_ms,
                    lease_ms,
                    busy: busy.remove(&id).unwrap_or_default(),
                    id,
                    host: row.try_get(1)?,
                    pid: u32::try_from(row.try_get::<i64, _>(2)?).unwrap_or(0),
                    queues: serde_json::from_str(&queues).unwrap_or_default(),
                });
            }
            let expired: Vec<(String, i64)> =
                sqlx::query_as(sql(include_str!("sql/stats_expired_workers.sql")))
                    .fetch_all(&mut *conn)
                    .await?;
            Ok::<_, TxError>(Stats {
                expired_workers: expired
                    .into_iter()
                    .map(|(id, ms)| ExpiredWorker::new(id, ms))
                    .collect(),
                queues,
                processed: count(processed),
                failed: count(failed),
                workers,
            })
        })
    }

    async fn jobs(&self, filter: &JobFilter) -> StoreResult<Vec<JobInfo>> {
        idempotent!(&self.pool, |conn| {
            // The file holds the fixed part; the filters are appended.
            let base = sql_with(
                include_str!("sql/jobs.sql").trim_end(),
                &[("columns", rows::JOB_COLUMNS)],
            )
            .0;
            let mut q = QueryBuilder::<MySql>::new(base);
            push_job_filter(&mut q, filter, "c.ms");
            let found = q.build().fetch_all(conn).await?;
            found.iter().map(rows::job_info).collect()
        })
    }

    async fn job(&self, id: &str) -> StoreResult<Option<JobInfo>> {
        self.row_by_id(
            include_str!("sql/job.sql"),
            rows::JOB_COLUMNS,
            id,
            rows::job_info,
        )
        .await
    }

    async fn search_jobs(&self, search: &JobSearch) -> StoreResult<Page<JobInfo>> {
        self.search_queued(search).await
    }

    async fn completed_jobs(&self, search: &JobSearch) -> StoreResult<Page<CompletedJob>> {
        self.search_completed(search).await
    }

    async fn prune_completed(&self, age: Duration) -> StoreResult<u64> {
        self.prune_history(age).await
    }

    async fn delete_job(&self, id: &str) -> StoreResult<bool> {
        let n = in_transaction!(&self.pool, Begin::Write, |conn| {
            let n = sqlx::query(include_str!("sql/delete_job.sql"))
                .bind(id)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            if n > 0 {
                // An operator's delete frees the job's unique lock (one held until expiry
                // stays), and drops it from the tag index.
                sqlx::query(include_str!("sql/delete_job_locks.sql"))
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query(include_str!("sql/delete_job_tags.sql"))
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok::<_, TxError>(n)
        })?;
        Ok(n > 0)
    }

    async fn run_job_now(&self, id: &str) -> StoreResult<bool> {
        let n = in_transaction!(&self.pool, Begin::Write, |conn| {
            let n = sqlx::query(sql(include_str!("sql/run_job_now.sql")))
                .bind(id)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            bump_counters(conn, ADMIN_SLOT, 0, n).await?;
            Ok::<_, TxError>(n)
        })?;
        if n > 0 {
            self.wakeup.notify();
        }
        Ok(n > 0)
    }

    async fn clear(&self, queue: &str) -> StoreResult<u64> {
        in_transaction!(&self.pool, Begin::Write, |conn| {
            // Like a delete, clearing frees the unique locks of the jobs (not those held until
            // expiry).
            sqlx::query(include_str!("sql/clear_locks.sql"))
                .bind(queue)
                .execute(&mut *conn)
                .await?;
            sqlx::query(include_str!("sql/clear_tags.sql"))
                .bind(queue)
                .execute(&mut *conn)
                .await?;
            let n = sqlx::query(include_str!("sql/clear.sql"))
                .bind(queue)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            Ok::<_, TxError>(n)
        })
    }

    async fn failed_jobs(&self, filter: &FailedFilter) -> StoreResult<(Vec<FailedJob>, u64)> {
        in_transaction!(&self.pool, Begin::Snapshot, |conn| {
            let found = sqlx::query(sql_with(
                include_str!("sql/failed_jobs.sql"),
                &[("columns", rows::FAILED_COLUMNS)],
            ))
            .bind(&filter.queue)
            .bind(&filter.queue)
            .bind(i64::from(filter.limit.unwrap_or(100)))
            .fetch_all(&mut *conn)
            .await?;
            let total: i64 = sqlx::query_scalar(include_str!("sql/failed_jobs_count.sql"))
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

    async fn failed_job(&self, id: &str) -> StoreResult<Option<FailedJob>> {
        self.row_by_id(
            include_str!("sql/failed_job.sql"),
            rows::FAILED_COLUMNS,
            id,
            rows::failed_job,
        )
        .await
    }

    async fn retry_failed(&self, selector: &RetrySelector) -> StoreResult<Vec<String>> {
        let retried = in_transaction!(&self.pool, Begin::Write, |conn| {
            let retried = retry_failed::requeue(conn, selector).await?;
            bump_counters(conn, ADMIN_SLOT, 0, u64::from(!retried.is_empty())).await?;
            Ok::<_, TxError>(retried)
        })?;
        if !retried.is_empty() {
            self.wakeup.notify();
        }
        Ok(retried)
    }

    async fn forget_failed(&self, id: &str) -> StoreResult<bool> {
        self.change_by_id(include_str!("sql/forget_failed.sql"), id)
            .await
    }

    async fn flush_failed(&self) -> StoreResult<u64> {
        in_transaction!(&self.pool, Begin::Write, |conn| {
            let n = sqlx::query(include_str!("sql/flush_failed.sql"))
                .execute(conn)
                .await?
                .rows_affected();
            Ok::<_, TxError>(n)
        })
    }

    async fn prune_failed(&self, age: Duration) -> StoreResult<u64> {
        self.prune_older_than(include_str!("sql/prune_failed.sql"), age)
            .await
    }

    async fn signal_restart(&self) -> StoreResult<i64> {
        // The epoch is the clock's reading, but always at least one past the previous epoch,
        // so it strictly increases even if the clock stands still or steps back.
        in_transaction!(&self.pool, Begin::Write, |conn| {
            sqlx::query(sql(include_str!("sql/signal_restart.sql")))
                .execute(&mut *conn)
                .await?;
            let epoch: i64 = sqlx::query_scalar(include_str!("sql/restart_epoch.sql"))
                .fetch_one(&mut *conn)
                .await?;
            Ok::<_, TxError>(epoch)
        })
    }
}
