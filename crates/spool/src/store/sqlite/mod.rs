//! The embedded SQLite store: one file, WAL mode, created and migrated on first use.
//!
//! Writes go through one connection owned by one plain thread (SQLite has one writer anyway,
//! and queueing writers in the process beats spinning on `SQLITE_BUSY`). A store operation is
//! sent to that thread as one closure and runs there whole, so the worker's hot path
//! ([`super::QueueStore::settle_and_reserve`]) costs one hand-over between threads however many statements
//! it runs. Multi-statement writes use `BEGIN IMMEDIATE` so they never hit a snapshot conflict.
//! Listings and counts run on a second thread with a read-only connection, so they never wait
//! for the writer.
//!
//! Neither thread belongs to a tokio runtime: replies come back on a oneshot channel, which
//! any runtime can await (the worker's heartbeat runs on a runtime of its own).
//!
//! Other processes are noticed by watching the database's directory (the `-wal` file comes and
//! goes, so the directory is what is watched).

use crate::store::{AdminStore, QueueStore, WorkflowStore};
use crate::store::{Claim, Held};
use std::{
    path::{Path, PathBuf},
    sync::{Arc, mpsc},
    time::Duration,
};

use async_trait::async_trait;
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Row, params, params_from_iter, types::Value,
};
use tokio::sync::oneshot;

use super::{
    BatchInfo, BatchPrune, CompletedJob, FailedFilter, FailedJob, Heartbeat, JobFilter, JobInfo,
    JobState, LimitMode, LimitState, NewBatch, NewJob, Progress, PushOutcome, QueueStats,
    ReapReport, ReservedJob, RetrySelector, Settlement, SlotRequest, Stats, Store, StoreError,
    StoreResult, WakeupSignal, Wakeups, WorkerInfo, WorkerStatus, rfc3339_ms,
};
use crate::{duration::millis, envelope::now_ms};

mod watch;
mod workflow;

/// The SQLite driver Spool uses, for apps that push inside their own transactions.
pub use rusqlite;

const SCHEMA_VERSION: i64 = 2;

/// Statements kept prepared per connection.
const STATEMENT_CACHE: usize = 64;

/// The SQLite store. Open it with [`crate::connect`] and a `sqlite://PATH` URL.
pub struct SqliteStore {
    url: String,
    writer: DbThread,
    reader: DbThread,
    wakeup: WakeupSignal,
    _watcher: Option<watch::DirWatcher>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file a `sqlite://PATH` URL names.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let path = db_path(url)?;
        let writer = DbThread::start(path.clone(), false, "spool-sqlite-writer").await?;
        let reader = DbThread::start(path.clone(), true, "spool-sqlite-reader").await?;
        let wakeup = WakeupSignal::default();
        let watcher = watch::DirWatcher::start(&path, wakeup.clone());
        Ok(SqliteStore {
            url: url.to_string(),
            writer,
            reader,
            wakeup,
            _watcher: watcher,
        })
    }

    /// Pushes jobs inside the caller's own transaction on the same database file: they exist if
    /// and only if it commits (Spool's tables, prefixed `spool_`, live beside the app's own).
    /// Unique locks are taken in the same transaction. Workers notice the commit through their
    /// watch on the database's directory.
    ///
    /// ```no_run
    /// # fn demo(job: spool::store::NewJob) -> Result<(), Box<dyn std::error::Error>> {
    /// use spool::store::sqlite::rusqlite;
    /// let mut conn = rusqlite::Connection::open("app.db")?;
    /// let tx = conn.transaction()?;
    /// tx.execute("UPDATE invoices SET state = 'sent' WHERE id = 42", [])?;
    /// spool::store::sqlite::SqliteStore::push_in_transaction(&tx, &[job])?;
    /// tx.commit()?; // the job exists from here on
    /// # Ok(()) }
    /// ```
    pub fn push_in_transaction(
        conn: &Connection,
        jobs: &[NewJob],
    ) -> StoreResult<Vec<PushOutcome>> {
        workflow::push_in(conn, jobs, now_ms())
    }

    /// Runs `op` in one `BEGIN IMMEDIATE` transaction on the writer thread.
    async fn write<R: Send + 'static>(
        &self,
        op: impl FnOnce(&Connection) -> StoreResult<R> + Send + 'static,
    ) -> StoreResult<R> {
        self.writer
            .run(move |conn| {
                // Cached statements, not `Connection::transaction`, which parses both every
                // time. A transaction left open by an error or panic is rolled back by the
                // connection thread before its next operation.
                conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
                let out = op(conn)?;
                conn.prepare_cached("COMMIT")?.execute([])?;
                Ok(out)
            })
            .await
    }

    /// Runs one statement's worth of work in autocommit mode on the writer thread.
    async fn write_one<R: Send + 'static>(
        &self,
        op: impl FnOnce(&Connection) -> StoreResult<R> + Send + 'static,
    ) -> StoreResult<R> {
        self.writer.run(move |conn| op(conn)).await
    }

    /// Runs `op` on the read-only connection.
    async fn read<R: Send + 'static>(
        &self,
        op: impl FnOnce(&Connection) -> StoreResult<R> + Send + 'static,
    ) -> StoreResult<R> {
        self.reader.run(move |conn| op(conn)).await
    }
}

/// The file a `sqlite://PATH` URL names (`sqlite:///abs/path` or `sqlite://relative/path`);
/// a query string, if any, is ignored.
fn db_path(url: &str) -> StoreResult<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .ok_or_else(|| StoreError::BadUrl(url.to_string()))?;
    let path = rest.split_once('?').map_or(rest, |(path, _)| path);
    if path.is_empty() {
        return Err(StoreError::BadUrl(format!("{url} (no file name)")));
    }
    Ok(PathBuf::from(path))
}

type Task = Box<dyn FnOnce(&mut Connection) + Send>;

/// A connection owned by a plain thread that runs one operation (a closure) at a time.
/// Dropping the handle ends the thread and closes the connection.
struct DbThread {
    tx: mpsc::Sender<Task>,
}

fn thread_gone() -> StoreError {
    StoreError::Unavailable("the SQLite connection thread stopped".into())
}

impl DbThread {
    async fn start(path: PathBuf, read_only: bool, name: &str) -> StoreResult<Self> {
        let (tx, rx) = mpsc::channel::<Task>();
        let (ready_tx, ready_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let mut conn = match open_connection(&path, read_only) {
                    Ok(conn) => {
                        let _ = ready_tx.send(Ok(()));
                        conn
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while let Ok(task) = rx.recv() {
                    // A panicking operation drops its reply (its caller gets an error); a
                    // failed or panicked one's transaction is rolled back; the thread and
                    // connection carry on.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        task(&mut conn);
                    }));
                    if !conn.is_autocommit() {
                        let _ = conn.execute_batch("ROLLBACK");
                    }
                }
            })
            .map_err(|e| StoreError::Other(format!("cannot start a SQLite thread: {e}")))?;
        ready_rx.await.map_err(|_| thread_gone())??;
        Ok(DbThread { tx })
    }

    async fn run<R: Send + 'static>(
        &self,
        op: impl FnOnce(&mut Connection) -> StoreResult<R> + Send + 'static,
    ) -> StoreResult<R> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Box::new(move |conn: &mut Connection| {
                let _ = reply.send(op(conn));
            }))
            .map_err(|_| thread_gone())?;
        answer.await.map_err(|_| thread_gone())?
    }
}

fn open_connection(path: &Path, read_only: bool) -> StoreResult<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    if !read_only {
        let _mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "cache_size", -32000)?;
    Ok(conn)
}

fn count(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

/// Claims up to N available jobs of one queue, oldest first.
const RESERVE_SQL: &str = "UPDATE spool_jobs
     SET worker_id = ?1, token = token + 1, reserved_at = ?2, attempts = attempts + 1
     WHERE seq IN (SELECT seq FROM spool_jobs
                   WHERE queue = ?3 AND worker_id IS NULL AND available_at <= ?2
                   ORDER BY available_at, seq LIMIT ?4)
     RETURNING id, queue, envelope, token, attempts, recoveries, deferrals, exceptions,
               retry_until, last_error, reserved_at, available_at, seq, unique_key";

/// Decodes a row of [`RESERVE_SQL`]'s columns; also returns `seq` for ordering and the
/// job's unique key.
fn reserved_row(row: &Row<'_>) -> rusqlite::Result<(ReservedJob, i64, Option<String>)> {
    let job = ReservedJob {
        id: row.get(0)?,
        queue: row.get(1)?,
        envelope: row.get(2)?,
        token: row.get(3)?,
        attempts: count(row.get(4)?),
        recoveries: count(row.get(5)?),
        deferrals: count(row.get(6)?),
        exceptions: count(row.get(7)?),
        retry_until: row.get(8)?,
        last_error: row.get(9)?,
        reserved_at: row.get(10)?,
        available_at: row.get(11)?,
    };
    Ok((job, row.get(12)?, row.get(13)?))
}

/// Columns a job listing selects, in this order (followed by the store's "now").
const JOB_COLUMNS: &str = "id, queue, job, worker_id, available_at, attempts, recoveries, deferrals, last_error, envelope, progress, progress_message";

/// Decodes a row of [`JOB_COLUMNS`] followed by the store's now (ms).
fn job_row(row: &Row<'_>) -> rusqlite::Result<JobInfo> {
    let worker: Option<String> = row.get(3)?;
    let available_at: i64 = row.get(4)?;
    let now: i64 = row.get(12)?;
    let progress: Option<i64> = row.get(10)?;
    let state = match (&worker, available_at > now) {
        (Some(_), _) => JobState::Reserved,
        (None, true) => JobState::Delayed,
        (None, false) => JobState::Pending,
    };
    Ok(JobInfo {
        id: row.get(0)?,
        queue: row.get(1)?,
        job: row.get(2)?,
        state,
        attempts: count(row.get(5)?),
        recoveries: count(row.get(6)?),
        deferrals: count(row.get(7)?),
        last_error: row.get(8)?,
        available_at,
        worker,
        envelope: row.get(9)?,
        progress: progress.map(|p| Progress {
            percent: p.clamp(0, 100) as u8,
            message: row.get(11).ok().flatten(),
        }),
    })
}

/// Columns a failed listing selects, in this order.
const FAILED_COLUMNS: &str = "id, queue, job, envelope, error, causes, attempts, failed_at";

/// Decodes a row of [`FAILED_COLUMNS`].
fn failed_row(row: &Row<'_>) -> rusqlite::Result<FailedJob> {
    let causes: String = row.get(5)?;
    Ok(FailedJob {
        id: row.get(0)?,
        queue: row.get(1)?,
        job: row.get(2)?,
        envelope: row.get(3)?,
        error: row.get(4)?,
        causes: serde_json::from_str(&causes).unwrap_or_else(|_| vec![causes]),
        attempts: count(row.get(6)?),
        failed_at: rfc3339_ms(row.get(7)?),
    })
}

/// Reserves on `conn` (inside the caller's transaction, or autocommit), queue by queue.
fn reserve_in(
    conn: &Connection,
    worker_id: &str,
    queues: &[String],
    limit: usize,
) -> StoreResult<Vec<ReservedJob>> {
    let mut out = Vec::with_capacity(limit.min(1024));
    if limit == 0 {
        return Ok(out);
    }
    let mut claim = conn.prepare_cached(RESERVE_SQL)?;
    let mut found = Vec::new();
    for queue in queues {
        let want = limit - out.len();
        if want == 0 {
            break;
        }
        found.clear();
        let rows = claim.query_map(
            params![worker_id, now_ms(), queue, want as i64],
            reserved_row,
        )?;
        for row in rows {
            found.push(row?);
        }
        // RETURNING gives no order: put them in claim order.
        found.sort_unstable_by_key(|(job, seq, _)| (job.available_at, *seq));
        for (job, _, unique_key) in found.drain(..) {
            if let Some(key) = unique_key {
                workflow::release_processing_lock(conn, &job.id, &key)?;
            }
            out.push(job);
        }
    }
    Ok(out)
}

/// Settles inside the caller's transaction, one fenced statement per job; returns the applied
/// flags (in input order) and whether any job was released (waiting workers should look again).
fn settle_in(
    conn: &Connection,
    worker_id: &str,
    settlements: &[Settlement],
) -> StoreResult<(Vec<bool>, bool)> {
    let now = now_ms();
    let mut applied = Vec::with_capacity(settlements.len());
    let mut completed: i64 = 0;
    let mut released = false;
    for settlement in settlements {
        let done = match settlement {
            Settlement::Complete {
                id,
                token,
                follow_ups,
                result,
            } => {
                let row = delete_settled(conn, id, worker_id, *token)?;
                if let Some(row) = &row {
                    completed += 1;
                    let end = workflow::End::Completed {
                        result: result.as_deref(),
                    };
                    workflow::after_settle(conn, row, end, follow_ups, now)?;
                }
                row.is_some()
            }
            Settlement::Release {
                id,
                token,
                delay,
                kind,
                error,
            } => {
                released = true;
                let (refund, deferral, exception) = kind.counter_effects();
                let applied =
                    conn.prepare_cached(
                        "UPDATE spool_jobs SET worker_id = NULL, reserved_at = NULL,
                            available_at = ?4, attempts = attempts - ?5,
                            deferrals = deferrals + ?6, exceptions = exceptions + ?7,
                            last_error = COALESCE(?8, last_error)
                     WHERE id = ?1 AND worker_id = ?2 AND token = ?3",
                    )?
                    .execute(params![
                        id,
                        worker_id,
                        token,
                        now + millis(*delay),
                        refund,
                        deferral,
                        exception,
                        error
                    ])? > 0;
                if applied {
                    workflow::release_slots(conn, id)?;
                }
                applied
            }
            Settlement::Fail {
                id,
                token,
                error,
                causes,
                follow_ups,
            } => {
                let causes = serde_json::to_string(causes).unwrap_or_else(|_| "[]".into());
                conn.prepare_cached(
                    "INSERT INTO spool_failed (id, queue, job, envelope, error, causes, attempts, failed_at, batch_id)
                     SELECT id, queue, job, envelope, ?4, ?5, attempts, ?6, batch_id
                     FROM spool_jobs WHERE id = ?1 AND worker_id = ?2 AND token = ?3
                     ON CONFLICT (id) DO UPDATE SET queue = excluded.queue, job = excluded.job,
                         envelope = excluded.envelope, error = excluded.error,
                         causes = excluded.causes, attempts = excluded.attempts,
                         failed_at = excluded.failed_at, batch_id = excluded.batch_id",
                )?
                .execute(params![id, worker_id, token, error, causes, now])?;
                let row = delete_settled(conn, id, worker_id, *token)?;
                if let Some(row) = &row {
                    workflow::after_settle(conn, row, workflow::End::Failed, follow_ups, now)?;
                }
                row.is_some()
            }
        };
        applied.push(done);
    }
    if completed > 0 {
        conn.prepare_cached(
            "INSERT INTO spool_meta (name, value) VALUES ('processed', ?1)
             ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
        )?
        .execute([completed])?;
    }
    Ok((applied, released))
}

/// Deletes a job its worker holds under `token`, returning what its side effects need.
fn delete_settled(
    conn: &Connection,
    id: &str,
    worker_id: &str,
    token: i64,
) -> StoreResult<Option<workflow::Settled>> {
    Ok(conn
        .prepare_cached(&format!(
            "DELETE FROM spool_jobs WHERE id = ?1 AND worker_id = ?2 AND token = ?3 RETURNING {}",
            workflow::SETTLED_COLUMNS
        ))?
        .query_row(params![id, worker_id, token], workflow::settled_row)
        .optional()?)
}

fn restart_epoch_in(conn: &Connection) -> StoreResult<i64> {
    let epoch: Option<i64> = conn
        .prepare_cached("SELECT value FROM spool_meta WHERE name = 'restart_epoch'")?
        .query_row([], |row| row.get(0))
        .optional()?;
    Ok(epoch.unwrap_or(0))
}

/// Jobs held by a worker whose lease is no longer current (`?1` is now).
macro_rules! dead_holder {
    () => {
        "worker_id IS NOT NULL AND worker_id NOT IN (SELECT id FROM spool_workers WHERE expires_at > ?1)"
    };
}

#[async_trait]
impl QueueStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> StoreResult<()> {
        self.write(|conn| {
            conn.execute(
                "CREATE TABLE IF NOT EXISTS spool_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
                [],
            )?;
            let current: Option<i64> =
                conn.query_row("SELECT MAX(version) FROM spool_migrations", [], |row| {
                    row.get(0)
                })?;
            let current = current.unwrap_or(0);
            if current > SCHEMA_VERSION {
                return Err(StoreError::SchemaTooNew {
                    found: current,
                    supported: SCHEMA_VERSION,
                });
            }
            if current < 1 {
                conn.execute_batch(include_str!("schema.sql"))?;
                conn.execute(
                    "INSERT INTO spool_migrations (version, applied_at) VALUES (1, ?1)",
                    [now_ms()],
                )?;
            }
            if current < 2 {
                conn.execute_batch(include_str!("schema_v2.sql"))?;
                conn.execute(
                    "INSERT INTO spool_migrations (version, applied_at) VALUES (2, ?1)",
                    [now_ms()],
                )?;
            }
            Ok(())
        })
        .await
    }

    async fn reopen(&self) -> StoreResult<Arc<dyn Store>> {
        Ok(Arc::new(SqliteStore::open(&self.url).await?))
    }

    async fn push(&self, jobs: &[NewJob]) -> StoreResult<Vec<PushOutcome>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let jobs = jobs.to_vec();
        let outcomes = self
            .write(move |conn| workflow::push_in(conn, &jobs, now_ms()))
            .await?;
        self.wakeup.notify();
        Ok(outcomes)
    }

    async fn register_worker(&self, worker: &WorkerInfo, lease: Duration) -> StoreResult<()> {
        let worker = worker.clone();
        self.write_one(move |conn| {
            let now = now_ms();
            conn.prepare_cached(
                "INSERT INTO spool_workers (id, host, pid, queues, started_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at",
            )?
            .execute(params![
                worker.id,
                worker.host,
                worker.pid as i64,
                serde_json::to_string(&worker.queues).unwrap_or_default(),
                now,
                now + millis(lease)
            ])?;
            Ok(())
        })
        .await
    }

    async fn heartbeat(&self, worker_id: &str, lease: Duration) -> StoreResult<Heartbeat> {
        let worker_id = worker_id.to_string();
        self.write_one(move |conn| {
            let kept = conn
                .prepare_cached("UPDATE spool_workers SET expires_at = ?1 WHERE id = ?2")?
                .execute(params![now_ms() + millis(lease), worker_id])?
                > 0;
            Ok(Heartbeat {
                lease_kept: kept,
                restart_epoch: restart_epoch_in(conn)?,
            })
        })
        .await
    }

    async fn deregister_worker(&self, worker_id: &str) -> StoreResult<()> {
        let worker_id = worker_id.to_string();
        let returned = self
            .write(move |conn| {
                let returned = conn
                    .prepare_cached(
                        "UPDATE spool_jobs SET worker_id = NULL, reserved_at = NULL, attempts = attempts - 1
                         WHERE worker_id = ?1",
                    )?
                    .execute([&worker_id])?;
                conn.prepare_cached("DELETE FROM spool_workers WHERE id = ?1")?
                    .execute([&worker_id])?;
                Ok(returned)
            })
            .await?;
        if returned > 0 {
            self.wakeup.notify();
        }
        Ok(())
    }

    async fn reserve(&self, claim: Claim<'_>) -> StoreResult<Vec<ReservedJob>> {
        let (worker_id, queues, limit) = (claim.worker_id, claim.queues, claim.limit);
        let worker_id = worker_id.to_string();
        let queues = queues.to_vec();
        self.write(move |conn| reserve_in(conn, &worker_id, &queues, limit))
            .await
    }

    async fn settle(&self, worker_id: &str, settlements: &[Settlement]) -> StoreResult<Vec<bool>> {
        // The same write with nothing to claim.
        let (applied, _) = self
            .settle_and_reserve(settlements, Claim::new(worker_id, &[], 0))
            .await?;
        Ok(applied)
    }

    async fn settle_and_reserve(
        &self,
        settlements: &[Settlement],
        claim: Claim<'_>,
    ) -> StoreResult<(Vec<bool>, Vec<ReservedJob>)> {
        let (worker_id, queues, limit) = (claim.worker_id, claim.queues, claim.limit);
        if settlements.is_empty() && limit == 0 {
            return Ok((Vec::new(), Vec::new()));
        }
        let worker_id = worker_id.to_string();
        let settlements = settlements.to_vec();
        let queues = queues.to_vec();
        let (applied, released, jobs) = self
            .write(move |conn| {
                let (applied, released) = if settlements.is_empty() {
                    (Vec::new(), false)
                } else {
                    settle_in(conn, &worker_id, &settlements)?
                };
                let jobs = reserve_in(conn, &worker_id, &queues, limit)?;
                Ok((applied, released, jobs))
            })
            .await?;
        if released {
            self.wakeup.notify();
        }
        Ok((applied, jobs))
    }

    async fn reap(&self, max_recoveries: u32) -> StoreResult<ReapReport> {
        let report = self
            .write(move |conn| {
                let now = now_ms();
                conn.prepare_cached(concat!(
                    "INSERT INTO spool_failed (id, queue, job, envelope, error, causes, attempts, failed_at, batch_id)
                     SELECT id, queue, job, envelope,
                            'worker lost ' || (recoveries + 1) || ' times while running this job',
                            json_array(COALESCE(last_error, 'no error recorded before the losses')),
                            attempts, ?1, batch_id
                     FROM spool_jobs WHERE ",
                    dead_holder!(),
                    " AND recoveries + 1 >= ?2
                     ON CONFLICT (id) DO UPDATE SET error = excluded.error, causes = excluded.causes,
                         attempts = excluded.attempts, failed_at = excluded.failed_at,
                         batch_id = excluded.batch_id"
                ))?
                .execute(params![now, max_recoveries as i64])?;
                let poisoned = conn
                    .prepare_cached(&format!(
                        "DELETE FROM spool_jobs WHERE {} AND recoveries + 1 >= ?2 RETURNING {}",
                        dead_holder!(),
                        workflow::SETTLED_COLUMNS
                    ))?
                    .query_map(params![now, max_recoveries as i64], workflow::settled_row)?
                    .collect::<Result<Vec<_>, _>>()?;
                for row in &poisoned {
                    workflow::after_settle(conn, row, workflow::End::Failed, &[], now)?;
                }
                let failed = poisoned.len();
                let recovered = conn
                    .prepare_cached(concat!(
                        "UPDATE spool_jobs SET worker_id = NULL, reserved_at = NULL, available_at = ?1,
                                attempts = attempts - 1, recoveries = recoveries + 1
                         WHERE ",
                        dead_holder!()
                    ))?
                    .execute([now])?;
                workflow::reap_workflow_state(conn, now)?;
                let workers_removed = conn
                    .prepare_cached("DELETE FROM spool_workers WHERE expires_at <= ?1")?
                    .execute([now])?;
                Ok(ReapReport {
                    recovered: recovered as u64,
                    failed: failed as u64,
                    workers_removed: workers_removed as u64,
                })
            })
            .await?;
        if report.recovered > 0 {
            self.wakeup.notify();
        }
        Ok(report)
    }

    async fn next_available_in(&self, queues: &[String]) -> StoreResult<Option<Duration>> {
        let queues = serde_json::to_string(queues).unwrap_or_default();
        let next: Option<i64> = self
            .read(move |conn| {
                Ok(conn
                    .prepare_cached(
                        "SELECT MIN(available_at) FROM spool_jobs
                         WHERE worker_id IS NULL AND queue IN (SELECT value FROM json_each(?1))",
                    )?
                    .query_row([queues], |row| row.get(0))?)
            })
            .await?;
        Ok(next.map(|at| Duration::from_millis((at - now_ms()).max(0) as u64)))
    }

    fn wakeups(&self) -> Wakeups {
        self.wakeup.subscribe()
    }

    async fn restart_epoch(&self) -> StoreResult<i64> {
        self.read(restart_epoch_in).await
    }
}

#[async_trait]
impl AdminStore for SqliteStore {
    async fn stats(&self) -> StoreResult<Stats> {
        self.read(|conn| {
            // One read transaction: the counts agree with each other.
            let tx = conn.unchecked_transaction()?;
            let now = now_ms();
            let queues = tx
                .prepare_cached(
                    "SELECT queue,
                            SUM(worker_id IS NULL AND available_at <= ?1),
                            SUM(worker_id IS NULL AND available_at > ?1),
                            SUM(worker_id IS NOT NULL),
                            MIN(CASE WHEN worker_id IS NULL AND available_at <= ?1 THEN available_at END)
                     FROM spool_jobs GROUP BY queue ORDER BY queue",
                )?
                .query_map([now], |row| {
                    let oldest: Option<i64> = row.get(4)?;
                    Ok(QueueStats {
                        name: row.get(0)?,
                        pending: row.get::<_, i64>(1)? as u64,
                        delayed: row.get::<_, i64>(2)? as u64,
                        reserved: row.get::<_, i64>(3)? as u64,
                        oldest_ready_age_ms: oldest.map(|t| (now - t).max(0) as u64).unwrap_or(0),
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let processed: Option<i64> = tx
                .prepare_cached("SELECT value FROM spool_meta WHERE name = 'processed'")?
                .query_row([], |row| row.get(0))
                .optional()?;
            let failed: i64 = tx
                .prepare_cached("SELECT COUNT(*) FROM spool_failed")?
                .query_row([], |row| row.get(0))?;
            let workers = tx
                .prepare_cached(
                    "SELECT w.id, w.host, w.pid, w.queues,
                            (SELECT json_group_array(j.id) FROM spool_jobs j WHERE j.worker_id = w.id)
                     FROM spool_workers w WHERE w.expires_at > ?1 ORDER BY w.started_at",
                )?
                .query_map([now], |row| {
                    let queues: String = row.get(3)?;
                    let busy: Option<String> = row.get(4)?;
                    Ok(WorkerStatus {
                        id: row.get(0)?,
                        host: row.get(1)?,
                        pid: row.get::<_, i64>(2)? as u32,
                        queues: serde_json::from_str(&queues).unwrap_or_default(),
                        busy: busy
                            .and_then(|b| serde_json::from_str(&b).ok())
                            .unwrap_or_default(),
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            tx.finish()?;
            Ok(Stats {
                queues,
                processed: processed.unwrap_or(0) as u64,
                failed: failed as u64,
                workers,
            })
        })
        .await
    }

    async fn jobs(&self, filter: &JobFilter) -> StoreResult<Vec<JobInfo>> {
        let now = now_ms();
        let mut sql = format!("SELECT {JOB_COLUMNS}, ? FROM spool_jobs WHERE 1 = 1");
        let mut args = vec![Value::Integer(now)];
        if let Some(queue) = &filter.queue {
            sql.push_str(" AND queue = ?");
            args.push(Value::Text(queue.clone()));
        }
        match filter.state {
            Some(JobState::Pending) => {
                sql.push_str(" AND worker_id IS NULL AND available_at <= ?");
                args.push(Value::Integer(now));
            }
            Some(JobState::Delayed) => {
                sql.push_str(" AND worker_id IS NULL AND available_at > ?");
                args.push(Value::Integer(now));
            }
            Some(JobState::Reserved) => sql.push_str(" AND worker_id IS NOT NULL"),
            None => {}
        }
        sql.push_str(" ORDER BY available_at, seq LIMIT ?");
        args.push(Value::Integer(i64::from(filter.limit.unwrap_or(100))));
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(&sql)?
                .query_map(params_from_iter(args), job_row)?
                .collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn job(&self, id: &str) -> StoreResult<Option<JobInfo>> {
        let id = id.to_string();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {JOB_COLUMNS}, ?1 FROM spool_jobs WHERE id = ?2"
                ))?
                .query_row(params![now_ms(), id], job_row)
                .optional()?)
        })
        .await
    }

    async fn delete_job(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_string();
        self.write(move |conn| {
            let deleted = conn
                .prepare_cached("DELETE FROM spool_jobs WHERE id = ?1 AND worker_id IS NULL")?
                .execute([&id])?
                > 0;
            if deleted {
                workflow::release_locks_of(conn, &id)?;
            }
            Ok(deleted)
        })
        .await
    }

    async fn run_job_now(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_string();
        let found = self
            .write_one(move |conn| {
                Ok(conn
                    .prepare_cached(
                        "UPDATE spool_jobs SET available_at = ?1
                         WHERE id = ?2 AND worker_id IS NULL AND available_at > ?1",
                    )?
                    .execute(params![now_ms(), id])?
                    > 0)
            })
            .await?;
        if found {
            self.wakeup.notify();
        }
        Ok(found)
    }

    async fn clear(&self, queue: &str) -> StoreResult<u64> {
        let queue = queue.to_string();
        self.write(move |conn| {
            conn.prepare_cached(
                "DELETE FROM spool_locks WHERE until <> 'expiry' AND owner IN
                     (SELECT id FROM spool_jobs WHERE queue = ?1 AND worker_id IS NULL)",
            )?
            .execute([&queue])?;
            Ok(conn
                .prepare_cached("DELETE FROM spool_jobs WHERE queue = ?1 AND worker_id IS NULL")?
                .execute([&queue])? as u64)
        })
        .await
    }

    async fn failed_jobs(&self, filter: &FailedFilter) -> StoreResult<(Vec<FailedJob>, u64)> {
        let queue = filter.queue.clone();
        let limit = i64::from(filter.limit.unwrap_or(100));
        self.read(move |conn| {
            let tx = conn.unchecked_transaction()?;
            let jobs = tx
                .prepare_cached(&format!(
                    "SELECT {FAILED_COLUMNS} FROM spool_failed WHERE (?1 IS NULL OR queue = ?1)
                     ORDER BY failed_at DESC, id LIMIT ?2"
                ))?
                .query_map(params![queue, limit], failed_row)?
                .collect::<Result<Vec<_>, _>>()?;
            let total: i64 = tx
                .prepare_cached(
                    "SELECT COUNT(*) FROM spool_failed WHERE (?1 IS NULL OR queue = ?1)",
                )?
                .query_row([&queue], |row| row.get(0))?;
            tx.finish()?;
            Ok((jobs, total as u64))
        })
        .await
    }

    async fn failed_job(&self, id: &str) -> StoreResult<Option<FailedJob>> {
        let id = id.to_string();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {FAILED_COLUMNS} FROM spool_failed WHERE id = ?1"
                ))?
                .query_row([id], failed_row)
                .optional()?)
        })
        .await
    }

    async fn retry_failed(&self, selector: &RetrySelector) -> StoreResult<Vec<String>> {
        let (ids, queue, all, batch) = match selector {
            RetrySelector::Ids(ids) => (
                serde_json::to_string(ids).unwrap_or_default(),
                None,
                0,
                None,
            ),
            RetrySelector::All { queue } => ("[]".to_string(), queue.clone(), 1, None),
            RetrySelector::Batch(id) => ("[]".to_string(), None, 2, Some(id.clone())),
        };
        let retried = self
            .write(move |conn| {
                let now = now_ms();
                // The retry deadline is recomputed from the envelope's retry window (S-RETRY-4).
                let retried = conn
                    .prepare_cached(
                        "INSERT INTO spool_jobs (id, queue, job, envelope, available_at, retry_until,
                                                 created_at, batch_id)
                         SELECT f.id, f.queue, f.job, f.envelope, ?1,
                                ?1 + (f.envelope ->> '$.options.retry_for_ms'), ?1, f.batch_id
                         FROM spool_failed f
                         WHERE (?2 = 1 AND (?3 IS NULL OR f.queue = ?3))
                            OR (?2 = 0 AND f.id IN (SELECT value FROM json_each(?4)))
                            OR (?2 = 2 AND f.batch_id = ?5)
                         ON CONFLICT (id) DO NOTHING
                         RETURNING id, batch_id",
                    )?
                    .query_map(params![now, all, queue, ids, batch], |row| {
                        Ok((row.get::<_, String>(0)?, row.get::<_, Option<String>>(1)?))
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                let mut forget = conn.prepare_cached("DELETE FROM spool_failed WHERE id = ?1")?;
                for (id, _) in &retried {
                    forget.execute([id])?;
                }
                let in_batches: Vec<(String, String)> = retried
                    .iter()
                    .filter_map(|(id, batch)| Some((id.clone(), batch.clone()?)))
                    .collect();
                workflow::uncount_retried(conn, &in_batches)?;
                Ok(retried.into_iter().map(|(id, _)| id).collect::<Vec<_>>())
            })
            .await?;
        if !retried.is_empty() {
            self.wakeup.notify();
        }
        Ok(retried)
    }

    async fn forget_failed(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_string();
        self.write_one(move |conn| {
            Ok(conn
                .prepare_cached("DELETE FROM spool_failed WHERE id = ?1")?
                .execute([id])?
                > 0)
        })
        .await
    }

    async fn flush_failed(&self) -> StoreResult<u64> {
        self.write_one(|conn| {
            Ok(conn
                .prepare_cached("DELETE FROM spool_failed")?
                .execute([])? as u64)
        })
        .await
    }

    async fn prune_failed(&self, age: Duration) -> StoreResult<u64> {
        self.write_one(move |conn| {
            Ok(conn
                .prepare_cached("DELETE FROM spool_failed WHERE failed_at < ?1")?
                .execute([now_ms() - millis(age)])? as u64)
        })
        .await
    }

    async fn signal_restart(&self) -> StoreResult<i64> {
        self.write_one(|conn| {
            Ok(conn
                .prepare_cached(
                    "INSERT INTO spool_meta (name, value) VALUES ('restart_epoch', ?1)
                     ON CONFLICT (name) DO UPDATE SET value = MAX(excluded.value, value + 1)
                     RETURNING value",
                )?
                .query_row([now_ms()], |row| row.get(0))?)
        })
        .await
    }
}

#[async_trait]
impl WorkflowStore for SqliteStore {
    async fn create_batch(
        &self,
        batch: &NewBatch,
        jobs: &[NewJob],
    ) -> StoreResult<Vec<PushOutcome>> {
        let (batch, jobs) = (batch.clone(), jobs.to_vec());
        let outcomes = self
            .write(move |conn| workflow::create_batch(conn, &batch, &jobs, now_ms()))
            .await?;
        self.wakeup.notify();
        Ok(outcomes)
    }

    async fn add_to_batch(&self, batch_id: &str, jobs: &[NewJob]) -> StoreResult<Vec<PushOutcome>> {
        let (batch_id, jobs) = (batch_id.to_string(), jobs.to_vec());
        let outcomes = self
            .write(move |conn| workflow::add_to_batch(conn, &batch_id, &jobs, now_ms()))
            .await?;
        self.wakeup.notify();
        Ok(outcomes)
    }

    async fn batch(&self, id: &str) -> StoreResult<Option<BatchInfo>> {
        let id = id.to_string();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {} FROM spool_batches WHERE id = ?1",
                    workflow::BATCH_COLUMNS
                ))?
                .query_row([id], workflow::batch_row)
                .optional()?)
        })
        .await
    }

    async fn batches(&self, limit: u32) -> StoreResult<Vec<BatchInfo>> {
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {} FROM spool_batches ORDER BY created_at DESC, id LIMIT ?1",
                    workflow::BATCH_COLUMNS
                ))?
                .query_map([limit], workflow::batch_row)?
                .collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn cancel_batch(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_string();
        self.write_one(move |conn| {
            Ok(conn
                .prepare_cached(
                    "UPDATE spool_batches SET cancelled_at = ?2 WHERE id = ?1 AND cancelled_at IS NULL",
                )?
                .execute(params![id, now_ms()])?
                > 0)
        })
        .await
    }

    async fn prune_batches(&self, prune: BatchPrune) -> StoreResult<u64> {
        let now = now_ms();
        let before = |age: Option<Duration>| age.map(|a| now - millis(a));
        let (finished, unfinished, cancelled) = (
            before(prune.finished),
            before(prune.unfinished),
            before(prune.cancelled),
        );
        self.write_one(move |conn| {
            Ok(conn
                .prepare_cached(
                    "DELETE FROM spool_batches
                     WHERE (?1 IS NOT NULL AND finished_at IS NOT NULL AND finished_at < ?1)
                        OR (?2 IS NOT NULL AND finished_at IS NULL AND created_at < ?2)
                        OR (?3 IS NOT NULL AND cancelled_at IS NOT NULL AND created_at < ?3)",
                )?
                .execute(params![finished, unfinished, cancelled])? as u64)
        })
        .await
    }

    async fn limit(&self, key: &str, window: Duration, mode: LimitMode) -> StoreResult<LimitState> {
        let key = key.to_string();
        self.write(move |conn| workflow::limit(conn, &key, window, mode, now_ms()))
            .await
    }

    async fn clear_limit(&self, key: &str) -> StoreResult<()> {
        let key = key.to_string();
        self.write_one(move |conn| {
            conn.prepare_cached("DELETE FROM spool_limits WHERE key = ?1")?
                .execute([key])?;
            Ok(())
        })
        .await
    }

    async fn acquire_slot(&self, worker_id: &str, request: &SlotRequest) -> StoreResult<bool> {
        let (worker_id, request) = (worker_id.to_string(), request.clone());
        self.write(move |conn| workflow::acquire_slot(conn, &worker_id, &request, now_ms()))
            .await
    }

    async fn set_progress(&self, held: Held<'_>, progress: &Progress) -> StoreResult<bool> {
        let (worker_id, id, token) = (held.worker_id, held.id, held.token);
        let (worker_id, id, progress) = (worker_id.to_string(), id.to_string(), progress.clone());
        self.write_one(move |conn| {
            Ok(conn
                .prepare_cached(
                    "UPDATE spool_jobs SET progress = ?4, progress_message = ?5
                     WHERE id = ?1 AND worker_id = ?2 AND token = ?3",
                )?
                .execute(params![
                    id,
                    worker_id,
                    token,
                    i64::from(progress.percent.min(100)),
                    progress.message
                ])?
                > 0)
        })
        .await
    }

    async fn job_result(&self, id: &str) -> StoreResult<Option<CompletedJob>> {
        let id = id.to_string();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {} FROM spool_results WHERE id = ?1",
                    workflow::RESULT_COLUMNS
                ))?
                .query_row([id], workflow::result_row)
                .optional()?)
        })
        .await
    }

    async fn prune_results(&self, age: Duration) -> StoreResult<u64> {
        self.write_one(move |conn| {
            Ok(conn
                .prepare_cached("DELETE FROM spool_results WHERE completed_at < ?1")?
                .execute([now_ms() - millis(age)])? as u64)
        })
        .await
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}
