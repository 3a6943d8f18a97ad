//! Operators' view of the PostgreSQL store: counts, listings, failed jobs and their retries,
//! and the restart signal.

use crate::store::rules::{MAX_OFFSET_MS, count};
use crate::store::sql::job_filter::push_job_filter;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::{Postgres, QueryBuilder};

use super::{PostgresStore, fenced_ids};
use crate::store::{
    AdminStore, CompletedJob, ExpiredWorker, FailedFilter, FailedJob, JobFilter, JobInfo,
    JobSearch, Page, QueueStats, RetrySelector, Stats, StoreResult, WorkerStatus, sql::rows,
};

/// A read-only transaction on one snapshot, so that the counts of a listing agree.
pub(super) const SNAPSHOT: &str = include_str!("sql/begin_snapshot.sql");

#[async_trait]
impl AdminStore for PostgresStore {
    async fn stats(&self) -> StoreResult<Stats> {
        // One snapshot, so the counts agree with each other.
        let mut tx = self.pool.begin_with(SNAPSHOT).await?;
        // COLLATE "C": byte order, as in SQLite, whatever the database's collation.
        let queue_rows: Vec<(String, i64, i64, i64, Option<i64>)> = self
            .query_as(include_str!("sql/stats_queues.sql"))
            .fetch_all(&mut *tx)
            .await?;
        let queues = queue_rows
            .into_iter()
            .map(
                |(name, pending, delayed, reserved, oldest_age)| QueueStats {
                    paused: false,
                    name,
                    pending: count(pending),
                    delayed: count(delayed),
                    reserved: count(reserved),
                    oldest_ready_age_ms: oldest_age.map(count).unwrap_or(0),
                },
            )
            .collect();
        let (processed, failed): (i64, i64) = self
            .query_as(include_str!("sql/stats_counters.sql"))
            .fetch_one(&mut *tx)
            .await?;
        #[allow(clippy::type_complexity)]
        let worker_rows: Vec<(
            String,
            String,
            i64,
            Vec<String>,
            Vec<String>,
            i64,
            Option<i64>,
            i64,
        )> = self
            .query_as(include_str!("sql/stats_workers.sql"))
            .fetch_all(&mut *tx)
            .await?;
        let expired: Vec<(String, i64)> = self
            .query_as(include_str!("sql/stats_expired_workers.sql"))
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let workers = worker_rows
            .into_iter()
            .map(|(id, host, pid, queues, busy, expires_at, lease, now)| {
                let (last_seen_ms, lease_ms) = WorkerStatus::seen(expires_at, lease, now);
                WorkerStatus {
                    id,
                    host,
                    pid: u32::try_from(pid).unwrap_or(0),
                    queues,
                    busy,
                    last_seen_ms,
                    lease_ms,
                }
            })
            .collect();
        Ok(Stats {
            expired_workers: expired
                .into_iter()
                .map(|(id, ms)| ExpiredWorker::new(id, ms))
                .collect(),
            queues,
            processed: count(processed),
            failed: count(failed),
            workers,
        })
    }

    async fn jobs(&self, filter: &JobFilter) -> StoreResult<Vec<JobInfo>> {
        // The filters are appended to the fixed statement, which ends in `WHERE true`.
        let mut q = QueryBuilder::<Postgres>::new(self.sql(include_str!("sql/jobs.sql")).0);
        push_job_filter(&mut q, filter, "clock.ms");
        let mut conn = self.unit(&self.pool).await?;
        let found = q
            .build()
            .persistent(!self.pooled)
            .fetch_all(&mut *conn)
            .await?;
        conn.done().await?;
        Ok(found.iter().map(rows::job_info).collect::<Result<_, _>>()?)
    }

    async fn job(&self, id: &str) -> StoreResult<Option<JobInfo>> {
        self.row_by_id(include_str!("sql/job.sql"), id, rows::job_info)
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
        // An operator's delete frees the job's unique lock (one held until expiry stays).
        let mut conn = self.unit(&self.pool).await?;
        let deleted: bool = self
            .query_scalar(include_str!("sql/delete_job.sql"))
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
        conn.done().await?;
        Ok(deleted)
    }

    async fn run_job_now(&self, id: &str) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let n = self
            .query(include_str!("sql/run_job_now.sql"))
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n > 0 {
            self.notify_in(&mut tx).await?;
        }
        tx.commit().await?;
        if n > 0 {
            self.wakeup.notify();
        }
        Ok(n > 0)
    }

    async fn clear(&self, queue: &str) -> StoreResult<u64> {
        // Like a delete, clearing frees the unique locks of the jobs (not those held until
        // expiry).
        let mut conn = self.unit(&self.pool).await?;
        let n: i64 = self
            .query_scalar(include_str!("sql/clear.sql"))
            .bind(queue)
            .fetch_one(&mut *conn)
            .await?;
        conn.done().await?;
        Ok(count(n))
    }

    async fn failed_jobs(&self, filter: &FailedFilter) -> StoreResult<(Vec<FailedJob>, u64)> {
        let mut tx = self.pool.begin_with(SNAPSHOT).await?;
        let found = self
            .query(include_str!("sql/failed_jobs.sql"))
            .bind(&filter.queue)
            .bind(i64::from(filter.limit.unwrap_or(100)))
            .fetch_all(&mut *tx)
            .await?;
        let total: i64 = self
            .query_scalar(include_str!("sql/failed_jobs_count.sql"))
            .bind(&filter.queue)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        let jobs = found
            .iter()
            .map(rows::failed_job)
            .collect::<Result<_, _>>()?;
        Ok((jobs, count(total)))
    }

    async fn failed_page(&self, filter: &FailedFilter) -> StoreResult<Vec<FailedJob>> {
        // The newest records on the completion-time index; counting them all would read
        // every record (2.5 M of them take a quarter of a second).
        let mut conn = self.unit(&self.pool).await?;
        let found = self
            .query(include_str!("sql/failed_jobs.sql"))
            .bind(&filter.queue)
            .bind(i64::from(filter.limit.unwrap_or(100)))
            .fetch_all(&mut *conn)
            .await?;
        conn.done().await?;
        Ok(found
            .iter()
            .map(rows::failed_job)
            .collect::<Result<_, _>>()?)
    }

    async fn failed_job(&self, id: &str) -> StoreResult<Option<FailedJob>> {
        self.row_by_id(include_str!("sql/failed_job.sql"), id, rows::failed_job)
            .await
    }

    async fn retry_failed(&self, selector: &RetrySelector) -> StoreResult<Vec<String>> {
        let (all, queue, ids, batch): (bool, Option<&str>, &[String], Option<&str>) = match selector
        {
            RetrySelector::Ids(ids) => (false, None, ids, None),
            RetrySelector::All { queue } => (true, queue.as_deref(), &[], None),
            RetrySelector::Batch(id) => (false, None, &[], Some(id)),
        };
        let mut tx = self.pool.begin().await?;
        // Requeued oldest failure first, with fresh counters; the retry deadline is recomputed
        // from the envelope's retry window with the database clock (S-RETRY-4). A failed
        // record whose id is queued again meanwhile stays where it is. A retried batch job is
        // pending in its batch again: no longer counted as failed, and the cancellation and
        // end its failure caused are lifted.
        let retried: Vec<(String,)> = self
            .query_as(include_str!("sql/retry_failed.sql"))
            .bind(all)
            .bind(queue)
            .bind(ids)
            .bind(MAX_OFFSET_MS)
            .bind(batch)
            .fetch_all(&mut *tx)
            .await?;
        let retried = fenced_ids(retried);
        if !retried.is_empty() {
            self.notify_in(&mut tx).await?;
        }
        tx.commit().await?;
        if !retried.is_empty() {
            self.wakeup.notify();
        }
        Ok(retried)
    }

    async fn forget_failed(&self, id: &str) -> StoreResult<bool> {
        self.write_by_id(include_str!("sql/forget_failed.sql"), id)
            .await
    }

    async fn flush_failed(&self) -> StoreResult<u64> {
        let mut conn = self.unit(&self.pool).await?;
        let n = self
            .query(include_str!("sql/flush_failed.sql"))
            .execute(&mut *conn)
            .await?
            .rows_affected();
        conn.done().await?;
        Ok(n)
    }

    async fn prune_failed(&self, age: Duration) -> StoreResult<u64> {
        self.prune_older_than(include_str!("sql/prune_failed.sql"), age)
            .await
    }

    async fn signal_restart(&self) -> StoreResult<i64> {
        // The epoch is the clock's reading, but always at least one past the previous epoch,
        // so it strictly increases even if the clock stands still or steps back.
        let mut conn = self.unit(&self.pool).await?;
        let epoch: i64 = self
            .query_scalar(include_str!("sql/signal_restart.sql"))
            .fetch_one(&mut *conn)
            .await?;
        conn.done().await?;
        Ok(epoch)
    }
}
