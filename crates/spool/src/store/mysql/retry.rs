//! Running work in transactions that survive the errors a busy MySQL server hands out.
//!
//! Claims and settles are designed not to wait on each other (see the module docs), but InnoDB
//! may still report a deadlock (1213) or a lock wait timeout (1205) in rare races, e.g. the
//! reaper taking the jobs of a worker that is settling them late, and a push can meet a
//! concurrent push of the same id (1062). Each of those rolls the work back whole, so running
//! it again is safe: [`in_transaction!`] does so a bounded number of times. A pooled connection the server
//! closed (idle timeout, `KILL`, restart) fails on its first statement; when that statement is
//! the `BEGIN`, nothing was done yet and another connection is tried.

use std::{future::Future, time::Duration};

use sqlx::{MySqlPool, mysql::MySqlDatabaseError};

use crate::store::{StoreError, StoreResult};

/// Runs of a transaction after a deadlock, lock wait timeout or duplicate key.
const MAX_RUNS: u32 = 8;
/// Fresh connections tried when the pooled one turns out to be closed.
const MAX_RECONNECTS: u32 = 12;

/// Why a run of a transaction stopped.
#[derive(Debug)]
pub(super) enum TxError {
    /// A database error.
    Sql(sqlx::Error),
    /// The work asks to be rolled back and run again: a fast path met a case it does not
    /// handle (and has switched itself to the general path).
    Rerun,
    /// The work found it cannot be done (e.g. no such batch): rolled back and reported as is.
    Store(StoreError),
}

impl From<sqlx::Error> for TxError {
    fn from(e: sqlx::Error) -> Self {
        TxError::Sql(e)
    }
}

/// How a transaction begins.
#[derive(Debug, Clone, Copy)]
pub(super) enum Begin {
    /// Read-write, at the session's isolation level (READ COMMITTED).
    Write,
    /// Read-only on one consistent snapshot (REPEATABLE READ), so counts agree.
    Snapshot,
}

/// The retry state of one transaction: see [`in_transaction!`].
#[derive(Debug)]
pub(super) struct Attempts {
    begin: Begin,
    runs: u32,
    reconnects: u32,
}

impl Attempts {
    pub(super) fn new(begin: Begin) -> Self {
        Attempts {
            begin,
            runs: 0,
            reconnects: 0,
        }
    }

    /// Begins a transaction on a pooled connection, on another one if the pooled one turns out
    /// to be closed.
    pub(super) async fn begin(
        &mut self,
        pool: &MySqlPool,
    ) -> StoreResult<sqlx::Transaction<'static, sqlx::MySql>> {
        loop {
            match start(pool, self.begin).await {
                Ok(tx) => return Ok(tx),
                Err(e) if reconnect_after(&e, &mut self.reconnects) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Commits after a successful run. `Some` when done, `None` to run the work again.
    pub(super) async fn finish<T>(
        &mut self,
        tx: sqlx::Transaction<'static, sqlx::MySql>,
        result: Result<T, TxError>,
    ) -> StoreResult<Option<T>> {
        let result = match result {
            Ok(value) => tx.commit().await.map(|()| value).map_err(TxError::Sql),
            // Dropping the transaction rolls it back.
            Err(e) => Err(e),
        };
        self.runs += 1;
        match result {
            Ok(value) => Ok(Some(value)),
            Err(TxError::Rerun) if self.runs < MAX_RUNS => Ok(None),
            Err(TxError::Sql(e)) if is_transient(&e) && self.runs < MAX_RUNS => {
                tracing::debug!("MySQL transaction rolled back ({e}); running it again");
                pause(self.runs).await;
                Ok(None)
            }
            Err(TxError::Rerun) => Err(StoreError::Other(
                "a settlement kept asking to be run again".into(),
            )),
            Err(TxError::Sql(e)) => Err(e.into()),
            Err(TxError::Store(e)) => Err(e),
        }
    }
}

/// Runs a block in a transaction on a connection from a pool and commits, running it again
/// after transient failures (see the module docs). The block sees the connection as
/// `&mut MySqlConnection` under the given name and evaluates to `Result<T, TxError>`; the
/// macro evaluates to `StoreResult<T>`.
///
/// A macro rather than a function taking an async closure: the trait's futures must be
/// `Send`, which the compiler cannot yet prove for a closure borrowing the connection.
macro_rules! in_transaction {
    ($pool:expr, $begin:expr, |$conn:ident| $body:expr) => {{
        let mut attempts = $crate::store::mysql::retry::Attempts::new($begin);
        loop {
            let mut tx = match attempts.begin($pool).await {
                Ok(tx) => tx,
                Err(e) => break Err(e),
            };
            let result: Result<_, $crate::store::mysql::retry::TxError> = async {
                let $conn: &mut ::sqlx::MySqlConnection = &mut tx;
                $body
            }
            .await;
            match attempts.finish(tx, result).await {
                Ok(Some(value)) => break Ok(value),
                Ok(None) => {}
                Err(e) => break Err(e),
            }
        }
    }};
}
pub(super) use in_transaction;

/// Runs an idempotent block on a pooled connection outside a transaction (reads, and writes
/// that may be applied twice, like extending a lease), again on another connection if the
/// first turns out to be closed. The block evaluates to `Result<T, sqlx::Error>`; the macro
/// to `StoreResult<T>`.
macro_rules! idempotent {
    ($pool:expr, |$conn:ident| $body:expr) => {{
        let mut reconnects = 0;
        loop {
            let mut pooled = match $pool.acquire().await {
                Ok(conn) => conn,
                Err(e) => break Err($crate::store::StoreError::from(e)),
            };
            let result: Result<_, ::sqlx::Error> = async {
                let $conn: &mut ::sqlx::MySqlConnection = &mut pooled;
                $body
            }
            .await;
            match result {
                Err(e) if $crate::store::mysql::retry::reconnect_after(&e, &mut reconnects) => {}
                other => break other.map_err($crate::store::StoreError::from),
            }
        }
    }};
}
pub(super) use idempotent;

/// Whether to try another connection after `e`, counting the tries.
pub(super) fn reconnect_after(e: &sqlx::Error, reconnects: &mut u32) -> bool {
    if !is_connection_lost(e) || *reconnects >= MAX_RECONNECTS {
        return false;
    }
    *reconnects += 1;
    tracing::debug!("a pooled MySQL connection was closed ({e}); trying another");
    true
}

async fn start(
    pool: &MySqlPool,
    begin: Begin,
) -> Result<sqlx::Transaction<'static, sqlx::MySql>, sqlx::Error> {
    match begin {
        Begin::Write => pool.begin().await,
        // SET TRANSACTION applies to the next transaction only: the session stays READ
        // COMMITTED. Taking the snapshot at the start makes every read see the same instant.
        Begin::Snapshot => {
            pool.begin_with(include_str!("sql/begin_snapshot.sql"))
                .await
        }
    }
}

/// A short, growing, jittered pause, so transactions that collided do not collide again.
fn pause(runs: u32) -> impl Future<Output = ()> {
    let ms = fastrand::u64(1..=4) * u64::from(runs);
    tokio::time::sleep(Duration::from_millis(ms))
}

/// Deadlock, lock wait timeout, or a duplicate key from a concurrent insert of the same id.
pub(super) fn is_transient(e: &sqlx::Error) -> bool {
    mysql_number(e).is_some_and(|n| matches!(n, 1205 | 1213 | 1062))
}

/// The connection is gone (as opposed to the statement being wrong).
fn is_connection_lost(e: &sqlx::Error) -> bool {
    use sqlx::Error as E;
    match e {
        E::Io(_) | E::Tls(_) | E::Protocol(_) | E::WorkerCrashed => true,
        _ => mysql_number(e).is_some_and(is_unavailable),
    }
}

fn mysql_number(e: &sqlx::Error) -> Option<u16> {
    match e {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<MySqlDatabaseError>()
            .map(MySqlDatabaseError::number),
        _ => None,
    }
}

/// Server error numbers that mean "the server or this connection is going away, or is
/// overloaded": retrying later, on a new connection, may help.
pub(crate) fn is_unavailable(number: u16) -> bool {
    matches!(
        number,
        1040 // too many connections
            | 1053 // server shutdown in progress
            | 1077..=1079 // shutdown
            | 1152..=1161 // aborted connection, network read/write errors
            | 1203 // the user has too many connections
            | 1205 // lock wait timeout (after our own retries)
            | 1213 // deadlock (after our own retries)
            | 1317 // query interrupted (KILL QUERY)
            | 1927 // connection killed (MariaDB)
            | 4031 // disconnected for inactivity (MySQL)
    )
}

/// Server error numbers that mean "this setup cannot work": a refused user or password, a
/// missing database, a missing privilege. Retrying cannot help; the message says what to fix.
pub(crate) fn is_misconfigured(number: u16) -> bool {
    matches!(
        number,
        1044 // access denied to the database
            | 1045 // access denied (user or password)
            | 1049 // unknown database
            | 1142 // command denied on a table
            | 1227 // a privilege is missing
            | 1698 // access denied (no password allowed for this user)
    )
}
