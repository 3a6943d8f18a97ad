//! The embedded SQLite store: one file, WAL mode, created and migrated on first use.
//!
//! Writes go through one connection (SQLite has one writer anyway, and queueing writers in
//! the process beats spinning on `SQLITE_BUSY`); multi-statement writes use `BEGIN IMMEDIATE`
//! so they never hit a snapshot conflict. Other processes are noticed by watching the
//! database's directory (the `-wal` file comes and goes, so the directory is what is watched).

use std::{str::FromStr, sync::Arc, time::Duration};

use async_trait::async_trait;
use sqlx::{
    AssertSqlSafe, QueryBuilder, Sqlite, SqliteConnection, SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

use super::{
    FailedFilter, FailedJob, Heartbeat, JobFilter, JobInfo, JobState, NewJob, PushOutcome,
    QueueStats, ReapReport, ReservedJob, RetrySelector, Settlement, Stats, Store, StoreError,
    StoreResult, WakeupSignal, Wakeups, WorkerInfo, WorkerStatus,
    batch::{SettlementBatch, applied_in_order, push_outcomes},
    rows,
};
use crate::{duration::millis, envelope::now_ms};

mod watch;

const SCHEMA_VERSION: i64 = 1;
/// Rows per INSERT statement (8 binds each stays well under SQLite's 32,766-variable limit).
const PUSH_CHUNK: usize = 1000;

/// The SQLite store. Open it with [`crate::connect`] and a `sqlite://PATH` URL.
pub struct SqliteStore {
    url: String,
    writer: SqlitePool,
    reader: SqlitePool,
    wakeup: WakeupSignal,
    _watcher: Option<watch::DirWatcher>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file a `sqlite://PATH` URL names.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::BadUrl(format!("{url} ({e})")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-32000");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            // A ping before every use would double the round trips of the hot path; a broken
            // connection shows up as an error on use, which the worker retries.
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(options.clone())
            .await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(options.clone().read_only(true))
            .await?;
        let wakeup = WakeupSignal::default();
        let watcher = watch::DirWatcher::start(options.get_filename(), wakeup.clone());
        Ok(SqliteStore {
            url: url.to_string(),
            writer,
            reader,
            wakeup,
            _watcher: watcher,
        })
    }

    async fn begin_write(&self) -> StoreResult<sqlx::Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Reserves on `conn` (inside the caller's transaction, or autocommit).
    async fn reserve_in(
        &self,
        conn: &mut SqliteConnection,
        worker_id: &str,
        queues: &[String],
        limit: usize,
    ) -> StoreResult<Vec<ReservedJob>> {
        let sql = format!(
            "UPDATE spool_jobs SET worker_id = ?1, token = token + 1, reserved_at = ?2, attempts = attempts + 1
             WHERE seq IN (SELECT seq FROM spool_jobs
                           WHERE queue = ?3 AND worker_id IS NULL AND available_at <= ?2
                           ORDER BY available_at, seq LIMIT ?4)
             RETURNING {}",
            rows::RESERVED_COLUMNS
        );
        let mut out = Vec::new();
        for queue in queues {
            let want = limit - out.len();
            if want == 0 {
                break;
            }
            let found = sqlx::query(AssertSqlSafe(sql.clone()))
                .bind(worker_id)
                .bind(now_ms())
                .bind(queue)
                .bind(want as i64)
                .fetch_all(&mut *conn)
                .await?;
            let found = found
                .iter()
                .map(rows::reserved)
                .collect::<Result<Vec<_>, _>>()?;
            out.extend(rows::in_claim_order(found));
        }
        Ok(out)
    }

    /// Settles inside the caller's transaction; returns the applied flags and whether any job
    /// was released (waiting workers should look again).
    async fn settle_in(
        &self,
        conn: &mut SqliteConnection,
        worker_id: &str,
        settlements: &[Settlement],
    ) -> StoreResult<(Vec<bool>, bool)> {
        let batch = SettlementBatch::new(settlements);
        let now = now_ms();
        let mut applied: Vec<String> = Vec::with_capacity(settlements.len());
        if let Some(json) = &batch.complete {
            let done: Vec<(String,)> = sqlx::query_as(
                "DELETE FROM spool_jobs WHERE seq IN (
                    SELECT j.seq FROM json_each(?1) e CROSS JOIN spool_jobs j ON j.id = e.value ->> 'id'
                    WHERE j.worker_id = ?2 AND j.token = e.value ->> 'token')
                 RETURNING id",
            )
            .bind(json)
            .bind(worker_id)
            .fetch_all(&mut *conn)
            .await?;
            sqlx::query(
                "INSERT INTO spool_meta (name, value) VALUES ('processed', ?)
                 ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            )
            .bind(done.len() as i64)
            .execute(&mut *conn)
            .await?;
            applied.extend(fenced_ids(done));
        }
        if let Some(json) = &batch.release {
            let released: Vec<(String,)> = sqlx::query_as(
                "UPDATE spool_jobs SET worker_id = NULL, reserved_at = NULL,
                        available_at = ?3 + d.delay_ms,
                        attempts = attempts - d.refund,
                        deferrals = deferrals + d.deferral,
                        exceptions = exceptions + d.exception,
                        last_error = COALESCE(d.error, last_error)
                 FROM (SELECT value ->> 'id' AS id, value ->> 'token' AS token,
                              value ->> 'delay_ms' AS delay_ms, value ->> 'refund' AS refund,
                              value ->> 'deferral' AS deferral, value ->> 'exception' AS exception,
                              value ->> 'error' AS error
                       FROM json_each(?1)) AS d
                 WHERE spool_jobs.id = d.id AND spool_jobs.worker_id = ?2 AND spool_jobs.token = d.token
                 RETURNING spool_jobs.id",
            )
            .bind(json)
            .bind(worker_id)
            .bind(now)
            .fetch_all(&mut *conn)
            .await?;
            applied.extend(fenced_ids(released));
        }
        if let Some(json) = &batch.fail {
            sqlx::query(
                "INSERT INTO spool_failed (id, queue, job, envelope, error, causes, attempts, failed_at)
                 SELECT j.id, j.queue, j.job, j.envelope, e.value ->> 'error', e.value ->> 'causes', j.attempts, ?3
                 FROM json_each(?1) e CROSS JOIN spool_jobs j ON j.id = e.value ->> 'id'
                 WHERE j.worker_id = ?2 AND j.token = e.value ->> 'token'
                 ON CONFLICT (id) DO UPDATE SET queue = excluded.queue, job = excluded.job,
                     envelope = excluded.envelope, error = excluded.error, causes = excluded.causes,
                     attempts = excluded.attempts, failed_at = excluded.failed_at",
            )
            .bind(json)
            .bind(worker_id)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            let failed: Vec<(String,)> = sqlx::query_as(
                "DELETE FROM spool_jobs WHERE seq IN (
                    SELECT j.seq FROM json_each(?1) e CROSS JOIN spool_jobs j ON j.id = e.value ->> 'id'
                    WHERE j.worker_id = ?2 AND j.token = e.value ->> 'token')
                 RETURNING id",
            )
            .bind(json)
            .bind(worker_id)
            .fetch_all(&mut *conn)
            .await?;
            applied.extend(fenced_ids(failed));
        }
        Ok((
            applied_in_order(settlements, &applied),
            batch.release.is_some(),
        ))
    }
}

fn fenced_ids(rows: Vec<(String,)>) -> Vec<String> {
    rows.into_iter().map(|(id,)| id).collect()
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS spool_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
        )
        .execute(&mut *tx)
        .await?;
        let current: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM spool_migrations")
            .fetch_one(&mut *tx)
            .await?;
        let current = current.unwrap_or(0);
        if current > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found: current,
                supported: SCHEMA_VERSION,
            });
        }
        if current < 1 {
            sqlx::raw_sql(include_str!("schema.sql"))
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO spool_migrations (version, applied_at) VALUES (1, ?)")
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn reopen(&self) -> StoreResult<Arc<dyn Store>> {
        Ok(Arc::new(SqliteStore::open(&self.url).await?))
    }

    async fn push(&self, jobs: &[NewJob]) -> StoreResult<Vec<PushOutcome>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let mut inserted = Vec::with_capacity(jobs.len());
        let mut tx = self.begin_write().await?;
        for chunk in jobs.chunks(PUSH_CHUNK) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO spool_jobs (id, queue, job, envelope, available_at, retry_until, created_at) ",
            );
            q.push_values(chunk, |mut row, job| {
                row.push_bind(&job.id)
                    .push_bind(&job.queue)
                    .push_bind(&job.job)
                    .push_bind(&job.envelope)
                    .push_bind(now + millis(job.delay))
                    .push_bind(job.retry_for.map(|d| now + millis(d)))
                    .push_bind(now);
            });
            q.push(" ON CONFLICT (id) DO NOTHING RETURNING id");
            let ids: Vec<(String,)> = q.build_query_as().fetch_all(&mut *tx).await?;
            inserted.extend(fenced_ids(ids));
        }
        tx.commit().await?;
        self.wakeup.notify();
        let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
        Ok(push_outcomes(&ids, &inserted))
    }

    async fn register_worker(&self, worker: &WorkerInfo, lease: Duration) -> StoreResult<()> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO spool_workers (id, host, pid, queues, started_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at",
        )
        .bind(&worker.id)
        .bind(&worker.host)
        .bind(worker.pid as i64)
        .bind(serde_json::to_string(&worker.queues).unwrap_or_default())
        .bind(now)
        .bind(now + millis(lease))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn heartbeat(&self, worker_id: &str, lease: Duration) -> StoreResult<Heartbeat> {
        let kept = sqlx::query("UPDATE spool_workers SET expires_at = ? WHERE id = ?")
            .bind(now_ms() + millis(lease))
            .bind(worker_id)
            .execute(&self.writer)
            .await?
            .rows_affected()
            > 0;
        Ok(Heartbeat {
            lease_kept: kept,
            restart_epoch: self.restart_epoch().await?,
        })
    }

    async fn deregister_worker(&self, worker_id: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let returned = sqlx::query(
            "UPDATE spool_jobs SET worker_id = NULL, reserved_at = NULL, attempts = attempts - 1
             WHERE worker_id = ?",
        )
        .bind(worker_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("DELETE FROM spool_workers WHERE id = ?")
            .bind(worker_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        if returned > 0 {
            self.wakeup.notify();
        }
        Ok(())
    }

    async fn reserve(
        &self,
        worker_id: &str,
        queues: &[String],
        limit: usize,
    ) -> StoreResult<Vec<ReservedJob>> {
        let mut conn = self.writer.acquire().await?;
        self.reserve_in(&mut conn, worker_id, queues, limit).await
    }

    async fn settle(&self, worker_id: &str, settlements: &[Settlement]) -> StoreResult<Vec<bool>> {
        if settlements.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        let (applied, released) = self.settle_in(&mut tx, worker_id, settlements).await?;
        tx.commit().await?;
        if released {
            self.wakeup.notify();
        }
        Ok(applied)
    }

    async fn settle_and_reserve(
        &self,
        worker_id: &str,
        settlements: &[Settlement],
        queues: &[String],
        limit: usize,
    ) -> StoreResult<(Vec<bool>, Vec<ReservedJob>)> {
        if settlements.is_empty() {
            // Nothing to settle: a lone claim statement needs no transaction around it (and
            // saves the idle worker's wake-up two round trips).
            return Ok((Vec::new(), self.reserve(worker_id, queues, limit).await?));
        }
        let mut tx = self.begin_write().await?;
        let (applied, released) = self.settle_in(&mut tx, worker_id, settlements).await?;
        let jobs = self.reserve_in(&mut tx, worker_id, queues, limit).await?;
        tx.commit().await?;
        if released {
            self.wakeup.notify();
        }
        Ok((applied, jobs))
    }

    async fn reap(&self, max_recoveries: u32) -> StoreResult<ReapReport> {
        let now = now_ms();
        let dead_holder = "worker_id IS NOT NULL AND worker_id NOT IN
                           (SELECT id FROM spool_workers WHERE expires_at > ?1)";
        let mut tx = self.begin_write().await?;
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO spool_failed (id, queue, job, envelope, error, causes, attempts, failed_at)
             SELECT id, queue, job, envelope,
                    'worker lost ' || (recoveries + 1) || ' times while running this job',
                    json_array(COALESCE(last_error, 'no error recorded before the losses')),
                    attempts, ?1
             FROM spool_jobs WHERE {dead_holder} AND recoveries + 1 >= ?2
             ON CONFLICT (id) DO UPDATE SET error = excluded.error, causes = excluded.causes,
                 attempts = excluded.attempts, failed_at = excluded.failed_at"
        )))
        .bind(now)
        .bind(max_recoveries as i64)
        .execute(&mut *tx)
        .await?;
        let failed = sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM spool_jobs WHERE {dead_holder} AND recoveries + 1 >= ?2"
        )))
        .bind(now)
        .bind(max_recoveries as i64)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let recovered = sqlx::query(AssertSqlSafe(format!(
            "UPDATE spool_jobs SET worker_id = NULL, reserved_at = NULL, available_at = ?1,
                    attempts = attempts - 1, recoveries = recoveries + 1
             WHERE {dead_holder}"
        )))
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let workers_removed = sqlx::query("DELETE FROM spool_workers WHERE expires_at <= ?")
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        if recovered > 0 {
            self.wakeup.notify();
        }
        Ok(ReapReport {
            recovered,
            failed,
            workers_removed,
        })
    }

    async fn next_available_in(&self, queues: &[String]) -> StoreResult<Option<Duration>> {
        let queues = serde_json::to_string(queues).unwrap_or_default();
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(available_at) FROM spool_jobs
             WHERE worker_id IS NULL AND queue IN (SELECT value FROM json_each(?))",
        )
        .bind(queues)
        .fetch_one(&self.reader)
        .await?;
        Ok(next.map(|at| Duration::from_millis((at - now_ms()).max(0) as u64)))
    }

    fn wakeups(&self) -> Wakeups {
        self.wakeup.subscribe()
    }

    async fn stats(&self) -> StoreResult<Stats> {
        let now = now_ms();
        let queue_rows: Vec<(String, i64, i64, i64, Option<i64>)> = sqlx::query_as(
            "SELECT queue,
                    SUM(worker_id IS NULL AND available_at <= ?1),
                    SUM(worker_id IS NULL AND available_at > ?1),
                    SUM(worker_id IS NOT NULL),
                    MIN(CASE WHEN worker_id IS NULL AND available_at <= ?1 THEN available_at END)
             FROM spool_jobs GROUP BY queue ORDER BY queue",
        )
        .bind(now)
        .fetch_all(&self.reader)
        .await?;
        let queues = queue_rows
            .into_iter()
            .map(|(name, pending, delayed, reserved, oldest)| QueueStats {
                name,
                pending: pending as u64,
                delayed: delayed as u64,
                reserved: reserved as u64,
                oldest_ready_age_ms: oldest.map(|t| (now - t).max(0) as u64).unwrap_or(0),
            })
            .collect();
        let processed: Option<i64> =
            sqlx::query_scalar("SELECT value FROM spool_meta WHERE name = 'processed'")
                .fetch_optional(&self.reader)
                .await?;
        let failed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM spool_failed")
            .fetch_one(&self.reader)
            .await?;
        let worker_rows: Vec<(String, String, i64, String, Option<String>)> = sqlx::query_as(
            "SELECT w.id, w.host, w.pid, w.queues,
                    (SELECT json_group_array(j.id) FROM spool_jobs j WHERE j.worker_id = w.id)
             FROM spool_workers w WHERE w.expires_at > ? ORDER BY w.started_at",
        )
        .bind(now)
        .fetch_all(&self.reader)
        .await?;
        let workers = worker_rows
            .into_iter()
            .map(|(id, host, pid, queues, busy)| WorkerStatus {
                id,
                host,
                pid: pid as u32,
                queues: serde_json::from_str(&queues).unwrap_or_default(),
                busy: busy
                    .and_then(|b| serde_json::from_str(&b).ok())
                    .unwrap_or_default(),
            })
            .collect();
        Ok(Stats {
            queues,
            processed: processed.unwrap_or(0) as u64,
            failed: failed as u64,
            workers,
        })
    }

    async fn jobs(&self, filter: &JobFilter) -> StoreResult<Vec<JobInfo>> {
        let now = now_ms();
        let mut q = QueryBuilder::<Sqlite>::new(format!("SELECT {}, ", rows::JOB_COLUMNS));
        q.push_bind(now).push(" FROM spool_jobs WHERE 1 = 1");
        if let Some(queue) = &filter.queue {
            q.push(" AND queue = ").push_bind(queue);
        }
        match filter.state {
            Some(JobState::Pending) => {
                q.push(" AND worker_id IS NULL AND available_at <= ")
                    .push_bind(now);
            }
            Some(JobState::Delayed) => {
                q.push(" AND worker_id IS NULL AND available_at > ")
                    .push_bind(now);
            }
            Some(JobState::Reserved) => {
                q.push(" AND worker_id IS NOT NULL");
            }
            None => {}
        }
        q.push(" ORDER BY available_at, seq LIMIT ")
            .push_bind(filter.limit.unwrap_or(100) as i64);
        let found = q.build().fetch_all(&self.reader).await?;
        Ok(found.iter().map(rows::job_info).collect::<Result<_, _>>()?)
    }

    async fn job(&self, id: &str) -> StoreResult<Option<JobInfo>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {}, ? FROM spool_jobs WHERE id = ?",
            rows::JOB_COLUMNS
        )))
        .bind(now_ms())
        .bind(id)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.as_ref().map(rows::job_info).transpose()?)
    }

    async fn delete_job(&self, id: &str) -> StoreResult<bool> {
        let n = sqlx::query("DELETE FROM spool_jobs WHERE id = ? AND worker_id IS NULL")
            .bind(id)
            .execute(&self.writer)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    async fn run_job_now(&self, id: &str) -> StoreResult<bool> {
        let now = now_ms();
        let n = sqlx::query(
            "UPDATE spool_jobs SET available_at = ?1 WHERE id = ?2 AND worker_id IS NULL AND available_at > ?1",
        )
        .bind(now)
        .bind(id)
        .execute(&self.writer)
        .await?
        .rows_affected();
        if n > 0 {
            self.wakeup.notify();
        }
        Ok(n > 0)
    }

    async fn clear(&self, queue: &str) -> StoreResult<u64> {
        let n = sqlx::query("DELETE FROM spool_jobs WHERE queue = ? AND worker_id IS NULL")
            .bind(queue)
            .execute(&self.writer)
            .await?
            .rows_affected();
        Ok(n)
    }

    async fn failed_jobs(&self, filter: &FailedFilter) -> StoreResult<(Vec<FailedJob>, u64)> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {} FROM spool_failed WHERE (?1 IS NULL OR queue = ?1)
             ORDER BY failed_at DESC, id LIMIT ?2",
            rows::FAILED_COLUMNS
        )))
        .bind(&filter.queue)
        .bind(filter.limit.unwrap_or(100) as i64)
        .fetch_all(&self.reader)
        .await?;
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM spool_failed WHERE (?1 IS NULL OR queue = ?1)",
        )
        .bind(&filter.queue)
        .fetch_one(&self.reader)
        .await?;
        let jobs = rows
            .iter()
            .map(rows::failed_job)
            .collect::<Result<_, _>>()?;
        Ok((jobs, total as u64))
    }

    async fn failed_job(&self, id: &str) -> StoreResult<Option<FailedJob>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {} FROM spool_failed WHERE id = ?",
            rows::FAILED_COLUMNS
        )))
        .bind(id)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.as_ref().map(rows::failed_job).transpose()?)
    }

    async fn retry_failed(&self, selector: &RetrySelector) -> StoreResult<Vec<String>> {
        let (ids, queue, all) = match selector {
            RetrySelector::Ids(ids) => (serde_json::to_string(ids).unwrap_or_default(), None, 0),
            RetrySelector::All { queue } => ("[]".to_string(), queue.clone(), 1),
        };
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        // The retry deadline is recomputed from the envelope's retry window (S-RETRY-4).
        let retried: Vec<(String,)> = sqlx::query_as(
            "INSERT INTO spool_jobs (id, queue, job, envelope, available_at, retry_until, created_at)
             SELECT f.id, f.queue, f.job, f.envelope, ?1,
                    ?1 + (f.envelope ->> '$.options.retry_for_ms'), ?1
             FROM spool_failed f
             WHERE (?2 = 1 AND (?3 IS NULL OR f.queue = ?3))
                OR (?2 = 0 AND f.id IN (SELECT value FROM json_each(?4)))
             ON CONFLICT (id) DO NOTHING
             RETURNING id",
        )
        .bind(now)
        .bind(all)
        .bind(&queue)
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        let retried = fenced_ids(retried);
        sqlx::query("DELETE FROM spool_failed WHERE id IN (SELECT value FROM json_each(?))")
            .bind(serde_json::to_string(&retried).unwrap_or_default())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        if !retried.is_empty() {
            self.wakeup.notify();
        }
        Ok(retried)
    }

    async fn forget_failed(&self, id: &str) -> StoreResult<bool> {
        let n = sqlx::query("DELETE FROM spool_failed WHERE id = ?")
            .bind(id)
            .execute(&self.writer)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    async fn flush_failed(&self) -> StoreResult<u64> {
        let n = sqlx::query("DELETE FROM spool_failed")
            .execute(&self.writer)
            .await?
            .rows_affected();
        Ok(n)
    }

    async fn prune_failed(&self, age: Duration) -> StoreResult<u64> {
        let n = sqlx::query("DELETE FROM spool_failed WHERE failed_at < ?")
            .bind(now_ms() - millis(age))
            .execute(&self.writer)
            .await?
            .rows_affected();
        Ok(n)
    }

    async fn signal_restart(&self) -> StoreResult<i64> {
        let epoch: i64 = sqlx::query_scalar(
            "INSERT INTO spool_meta (name, value) VALUES ('restart_epoch', ?)
             ON CONFLICT (name) DO UPDATE SET value = MAX(excluded.value, value + 1)
             RETURNING value",
        )
        .bind(now_ms())
        .fetch_one(&self.writer)
        .await?;
        Ok(epoch)
    }

    async fn restart_epoch(&self) -> StoreResult<i64> {
        let epoch: Option<i64> =
            sqlx::query_scalar("SELECT value FROM spool_meta WHERE name = 'restart_epoch'")
                .fetch_optional(&self.reader)
                .await?;
        Ok(epoch.unwrap_or(0))
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}
