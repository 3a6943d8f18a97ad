//! The embedded SQLite store: one file, WAL mode, created and migrated on first use.
//!
//! Writes go through one connection owned by one plain thread (SQLite has one writer anyway,
//! and queueing writers in the process beats spinning on `SQLITE_BUSY`). A store operation is
//! sent to that thread as one closure and runs there whole, so the worker's hot path
//! ([`settle_and_reserve`](crate::store::QueueStore::settle_and_reserve)) costs one hand-over
//! between threads however many statements it runs. Multi-statement writes use
//! `BEGIN IMMEDIATE` so they never hit a snapshot conflict. Listings and counts run on a second
//! thread with a read-only connection, so they never wait for the writer.
//!
//! Other processes are noticed by watching the database's directory (the `-wal` file comes and
//! goes, so the directory is what is watched).
//!
//! The contract's parts live in `queue.rs`, `admin.rs` and `workflow.rs`, every statement in
//! `sql/`, and the database threads in `thread.rs`.

use std::path::PathBuf;

use rusqlite::Connection;

use crate::{
    envelope::now_ms,
    store::{NewJob, PushOutcome, StoreError, StoreResult, WakeupSignal},
};

mod admin;
mod busy;
mod control;
mod kv;
mod metrics;
mod migrate;
mod one_statement;
mod queue;
mod rows;
mod search;
mod thread;
mod wakeups;
mod workflow;

/// The SQLite driver Spool uses, for apps that push inside their own transactions.
pub use rusqlite;

/// The SQLite store. Open it with [`crate::connect`] and a `sqlite://PATH` URL.
pub struct SqliteStore {
    url: String,
    /// Whether [`QueueStore::reopen`](crate::store::QueueStore::reopen) may create the file:
    /// as this handle was opened.
    mode: thread::OpenMode,
    writer: thread::DbThread,
    reader: thread::DbThread,
    wakeup: WakeupSignal,
    _watcher: Option<wakeups::DirWatcher>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file a `sqlite://PATH` or `sqlite:PATH` URL
    /// names.
    pub async fn open(url: &str) -> StoreResult<Self> {
        Self::open_as(url, thread::OpenMode::Create).await
    }

    /// Opens the database file a URL names only if it exists, creating nothing (no file, no
    /// `-wal`, no `-shm`): [`StoreError::NoStore`] when it is missing. Whether it holds
    /// Spool's tables is for [`QueueStore::check_schema`](crate::store::QueueStore::check_schema).
    pub async fn open_existing(url: &str) -> StoreResult<Self> {
        Self::open_as(url, thread::OpenMode::Existing).await
    }

    async fn open_as(url: &str, mode: thread::OpenMode) -> StoreResult<Self> {
        let path = db_path(url)?;
        let writer = thread::DbThread::start(path.clone(), mode, "spool-sqlite-writer")
            .await
            .map_err(|e| match e {
                StoreError::NoStore(_) => StoreError::no_store(url),
                e => e,
            })?;
        let reader = thread::DbThread::start(
            path.clone(),
            thread::OpenMode::ReadOnly,
            "spool-sqlite-reader",
        )
        .await?;
        let wakeup = WakeupSignal::default();
        let watcher = wakeups::DirWatcher::start(&path, wakeup.clone());
        Ok(SqliteStore {
            url: url.to_string(),
            mode,
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
        crate::store::check_jobs(jobs)?;
        queue::push_in(conn, jobs, now_ms())
    }

    /// Runs `op` in one `BEGIN IMMEDIATE` transaction on the writer thread.
    async fn write<R: Send + 'static>(
        &self,
        op: impl FnOnce(&Connection) -> StoreResult<R> + Send + 'static,
    ) -> StoreResult<R> {
        self.writer.run(move |conn| immediate(conn, op)).await
    }

    /// [`write`](Self::write), but only when `worth` (run first, in autocommit, without the
    /// write lock) says so; `skipped` otherwise.
    async fn write_if<R: Send + 'static>(
        &self,
        worth: impl FnOnce(&Connection) -> StoreResult<bool> + Send + 'static,
        skipped: R,
        op: impl FnOnce(&Connection) -> StoreResult<R> + Send + 'static,
    ) -> StoreResult<R> {
        self.writer
            .run(move |conn| {
                if !worth(conn)? {
                    return Ok(skipped);
                }
                immediate(conn, op)
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

/// Runs `op` in one `BEGIN IMMEDIATE` transaction on `conn` (the writer's connection).
fn immediate<R>(
    conn: &Connection,
    op: impl FnOnce(&Connection) -> StoreResult<R>,
) -> StoreResult<R> {
    // Cached statements, not `Connection::transaction`, which parses both every time. A
    // transaction left open by an error or panic is rolled back by the connection thread
    // before its next operation. Transaction control stays here, beside the thread that owns
    // the connection, rather than in `sql/`.
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    let out = op(conn)?;
    conn.prepare_cached("COMMIT")?.execute([])?;
    Ok(out)
}

/// The file a SQLite URL names: `sqlite://PATH` (`sqlite:///abs/path` or
/// `sqlite://relative/path`) or, as sqlx writes it, `sqlite:PATH`. A query string, if any, is
/// ignored; the path is taken as written (no percent-decoding, as sqlx does).
fn db_path(url: &str) -> StoreResult<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| StoreError::bad_url(url, "a SQLite URL starts with `sqlite:`"))?;
    let path = rest.split_once('?').map_or(rest, |(path, _)| path);
    if path.is_empty() {
        return Err(StoreError::bad_url(url, "no file name"));
    }
    if path == ":memory:" || url.contains("mode=memory") {
        return Err(StoreError::bad_url(
            url,
            "an in-memory SQLite database lives in one connection, and Spool's worker, reader \
             and CLI each open the store on their own; name a file (a temporary one for tests)",
        ));
    }
    Ok(PathBuf::from(path))
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}
