//! The database threads: a connection owned by one plain thread that runs store operations
//! (closures) one at a time. Neither thread belongs to a tokio runtime: replies come back on a
//! oneshot channel, which any runtime can await (the worker's heartbeat runs on a runtime of
//! its own).

use std::{
    path::{Path, PathBuf},
    sync::mpsc,
};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use crate::store::{StoreError, StoreResult};

/// Statements kept prepared per connection.
const STATEMENT_CACHE: usize = 64;

type Task = Box<dyn FnOnce(&mut Connection) + Send>;

/// How a connection opens its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OpenMode {
    /// Read and write, creating the file if it is missing, in WAL mode.
    Create,
    /// Read and write an existing file; a missing one is [`StoreError::NoStore`]. The journal
    /// mode is left as found (a Spool database is in WAL mode already, and a file that is not
    /// a Spool database must not be changed).
    Existing,
    /// Read only.
    ReadOnly,
}

/// A connection owned by a plain thread that runs one operation (a closure) at a time.
/// Dropping the handle ends the thread and closes the connection.
pub(super) struct DbThread {
    tx: mpsc::Sender<Task>,
}

fn thread_gone() -> StoreError {
    StoreError::Unavailable("the SQLite connection thread stopped".into())
}

/// The error for an operation that panicked, with the panic's message.
fn panicked(panic: &(dyn std::any::Any + Send)) -> StoreError {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into());
    StoreError::Other(format!("a SQLite operation panicked: {message}"))
}

impl DbThread {
    /// Opens the connection on a new thread named `name`; fails if the file cannot be opened.
    pub(super) async fn start(path: PathBuf, mode: OpenMode, name: &str) -> StoreResult<Self> {
        let (tx, rx) = mpsc::channel::<Task>();
        let (ready_tx, ready_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let mut conn = match open_connection(&path, mode) {
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

    /// Runs `op` on the thread's connection and waits for its answer.
    pub(super) async fn run<R: Send + 'static>(
        &self,
        op: impl FnOnce(&mut Connection) -> StoreResult<R> + Send + 'static,
    ) -> StoreResult<R> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Box::new(move |conn: &mut Connection| {
                // A panic is answered as an error of its own, not as "unavailable": retrying
                // the same operation would panic again, and the worker would resend it forever.
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| op(conn)))
                    .unwrap_or_else(|panic| Err(panicked(panic.as_ref())));
                let _ = reply.send(result);
            }))
            .map_err(|_| thread_gone())?;
        answer.await.map_err(|_| thread_gone())?
    }
}

/// Opens a connection with Spool's settings: WAL (the creating writer sets it), a busy
/// handler that naps briefly (`busy.rs`), a statement cache.
fn open_connection(path: &Path, mode: OpenMode) -> StoreResult<Connection> {
    let flags = match mode {
        OpenMode::ReadOnly => OpenFlags::SQLITE_OPEN_READ_ONLY,
        OpenMode::Existing => OpenFlags::SQLITE_OPEN_READ_WRITE,
        OpenMode::Create => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| cannot_open(path, mode, e))?;
    conn.busy_handler(Some(super::busy::on_busy))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    if mode == OpenMode::Create {
        let _mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "cache_size", -32000)?;
    Ok(conn)
}

/// Why `path` could not be opened, in terms of what to fix: SQLite itself says only "unable
/// to open database file".
fn cannot_open(path: &Path, mode: OpenMode, e: rusqlite::Error) -> StoreError {
    if mode != OpenMode::Create && !path.exists() {
        return StoreError::NoStore(path.display().to_string());
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let shown = path.display();
    if !dir.exists() {
        StoreError::Misconfigured(format!(
            "cannot create the SQLite database {shown}: its directory {} does not exist; create it or fix the path",
            dir.display()
        ))
    } else if !dir.is_dir() {
        StoreError::Misconfigured(format!(
            "cannot create the SQLite database {shown}: {} is not a directory",
            dir.display()
        ))
    } else if path.is_dir() {
        StoreError::Misconfigured(format!(
            "cannot open the SQLite database {shown}: it is a directory; name a file"
        ))
    } else {
        StoreError::Misconfigured(format!(
            "cannot open the SQLite database {shown} ({e}): check that this user may read and \
             write the file and create files in {}",
            dir.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_operation_is_an_error_of_its_own_and_the_thread_carries_on() {
        let dir = tempfile::tempdir().unwrap();
        let db = DbThread::start(dir.path().join("t.db"), OpenMode::Create, "test")
            .await
            .unwrap();
        let err = db
            .run(|_| -> StoreResult<()> { panic!("attempt to add with overflow") })
            .await
            .unwrap_err();
        assert!(!err.is_unavailable(), "{err}");
        assert!(err.to_string().contains("add with overflow"), "{err}");
        let one: i64 = db
            .run(|c| Ok(c.query_row("SELECT 1", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(one, 1);
    }
}
