//! The MySQL / MariaDB store: many worker processes on many machines share one database.
//!
//! Spool's tables (`spool_jobs`, `spool_failed`, `spool_workers`, `spool_meta`,
//! `spool_migrations`, and for workflows `spool_locks`, `spool_batches`, `spool_limits`,
//! `spool_slots`, `spool_keys`, `spool_results`) live in the database the URL names, next to an
//! app's own. Every time
//! comes from the database clock (`NOW(3)` in UTC, D-7), never from the caller's. It needs
//! MySQL ≥ 8.0.1 or MariaDB ≥ 10.6 for `SELECT ... FOR UPDATE SKIP LOCKED`, and checks the
//! server's version when it opens.
//!
//! Sessions run at READ COMMITTED: InnoDB then locks only the rows a statement returns or
//! changes, never the gaps between index entries, so claims (which skip locked rows), settles
//! (which touch only the worker's own rows) and pushes do not wait on each other. The shared
//! counters are bumped last in a transaction, always in the same key order. What InnoDB still
//! reports as a deadlock or lock wait timeout is run again (see `retry`). Wake-ups across
//! processes come from polling at an adaptive interval (see `poll`).
//!
//! Workflow state (unique locks, batches, slots, results, follow-ups) changes in the same
//! transaction as the push, claim or settlement it belongs to, and only when that applied;
//! jobs without any of it take the same statements as before (see `settle`).

use crate::store::{AdminStore, QueueStore, WorkflowStore};
use std::{
    str::FromStr,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use sqlx::{
    AssertSqlSafe, ConnectOptions, Connection, Executor, MySqlConnection, MySqlPool,
    mysql::{MySqlConnectOptions, MySqlPoolOptions},
};

use super::{
    BatchInfo, BatchPrune, CompletedJob, FailedFilter, FailedJob, Heartbeat, JobFilter, JobInfo,
    LimitMode, LimitState, NewBatch, NewJob, Progress, PushOutcome, ReapReport, ReservedJob,
    RetrySelector, Settlement, SlotRequest, Stats, Store, StoreError, StoreResult, WakeupSignal,
    Wakeups, WorkerInfo,
};

mod admin;
mod batches;
mod claim;
mod counters;
mod inspect;
mod limits;
mod migrate;
mod poll;
mod push;
mod retry;
mod settle;
mod sql;
mod version;
mod workers;
mod workflow;

pub use version::{Flavor, MINIMUM_VERSIONS, ServerVersion};

pub(crate) use retry::is_unavailable as is_unavailable_error;

use retry::{Begin, TxError, in_transaction};

/// Connections per store. Each worker process holds one store; its queries are short, so a
/// few connections serve many concurrent jobs without crowding the server's connection limit.
const MAX_CONNECTIONS: u32 = 8;
/// How long a query waits for a free connection before the store reports itself unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// Statements run on every new connection. READ COMMITTED: no gap locks (see the module
/// docs). A lock wait shorter than the default 50 s: the rare wait that happens is retried.
const SESSION_SETUP: &str = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED; \
                             SET SESSION innodb_lock_wait_timeout = 10";
/// Longest database name MySQL accepts.
const MAX_DATABASE_LEN: usize = 64;

/// The MySQL / MariaDB store. Open it with [`crate::connect`] and a `mysql://` (or
/// `mariadb://`) URL, or with [`MysqlStore::open_in_database`].
pub struct MysqlStore {
    /// Where every connection goes, for [`Store::reopen`] and the poller.
    options: MySqlConnectOptions,
    pool: MySqlPool,
    version: ServerVersion,
    wakeup: WakeupSignal,
    /// Started by the first [`Store::wakeups`] call; stopped when the store is dropped.
    poller: Mutex<Option<poll::Poller>>,
}

impl MysqlStore {
    /// Opens a pool to the database a `mysql://USER:PASSWORD@HOST:PORT/DB` URL names, after
    /// checking the server's version. Call [`QueueStore::migrate`] (or use [`crate::connect`])
    /// before first use.
    pub async fn open(url: &str) -> StoreResult<Self> {
        Self::with_options(parse_url(url)?).await
    }

    /// Like [`MysqlStore::open`], with Spool's tables in `database` instead of the URL's
    /// (which must exist; see [`MysqlStore::create_database`]).
    pub async fn open_in_database(url: &str, database: &str) -> StoreResult<Self> {
        validate_database(database)?;
        Self::with_options(parse_url(url)?.database(database)).await
    }

    /// Creates a database (if it does not exist) on the server a URL points at (the URL's own
    /// database need not exist), for test and benchmark runs that want one of their own.
    /// `database` is a plain name: lower-case letters, digits and `_`.
    pub async fn create_database(url: &str, database: &str) -> StoreResult<()> {
        validate_database(database)?;
        let mut conn = connect_direct(&parse_url(&without_database(url))?).await?;
        conn.execute(AssertSqlSafe(format!(
            "CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4"
        )))
        .await?;
        conn.close().await?;
        Ok(())
    }

    /// Drops a database and everything in it (for test and benchmark runs).
    pub async fn drop_database(url: &str, database: &str) -> StoreResult<()> {
        validate_database(database)?;
        let mut conn = connect_direct(&parse_url(&without_database(url))?).await?;
        conn.execute(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS `{database}`"
        )))
        .await?;
        conn.close().await?;
        Ok(())
    }

    async fn with_options(options: MySqlConnectOptions) -> StoreResult<Self> {
        if options.get_database().is_none() {
            return Err(StoreError::BadUrl(
                "a MySQL URL must name a database: mysql://USER@HOST/DB".into(),
            ));
        }
        // One direct connection first: the pool retries a refused connection until its acquire
        // timeout and then reports only that it timed out, while this fails at once and says
        // why (refused, unknown database, bad password). It also reads the server's version.
        let mut conn = connect_direct(&options).await?;
        let reported: String = sqlx::query_scalar("SELECT VERSION()")
            .fetch_one(&mut conn)
            .await?;
        conn.close().await?;
        let version = ServerVersion::parse(&reported).ok_or_else(|| {
            StoreError::ServerUnsupported(format!(
                "cannot read the server version `{reported}`; Spool needs {MINIMUM_VERSIONS} or newer"
            ))
        })?;
        if !version.is_supported() {
            return Err(StoreError::ServerUnsupported(format!(
                "{version} is too old: Spool needs {MINIMUM_VERSIONS} or newer \
                 (for SELECT ... FOR UPDATE SKIP LOCKED)"
            )));
        }
        let pool = MySqlPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .min_connections(0)
            // No ping before every use (it would add a round trip to each call); a connection
            // the server closed fails its first statement and is replaced (see `retry`).
            .test_before_acquire(false)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(SESSION_SETUP).await?;
                    Ok(())
                })
            })
            .connect_lazy_with(options.clone());
        Ok(MysqlStore {
            options,
            pool,
            version,
            wakeup: WakeupSignal::default(),
            poller: Mutex::new(None),
        })
    }

    /// The server's kind and version, as read when the store opened.
    pub fn server_version(&self) -> ServerVersion {
        self.version
    }

    /// The database holding Spool's tables.
    pub fn database(&self) -> &str {
        self.options.get_database().unwrap_or_default()
    }

    /// Settles, claims and bumps the counters in one transaction.
    async fn settle_then_claim(
        &self,
        worker_id: &str,
        settlements: &[Settlement],
        queues: &[String],
        limit: usize,
    ) -> StoreResult<(Vec<bool>, Vec<ReservedJob>)> {
        let mut fast = true;
        let (settled, jobs) = in_transaction!(&self.pool, Begin::Write, |conn| {
            let settled = settle::settle(conn, worker_id, settlements, &mut fast).await?;
            let jobs = claim::claim(conn, worker_id, queues, limit).await?;
            counters::bump(
                conn,
                sql::slot(worker_id),
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

fn parse_url(url: &str) -> StoreResult<MySqlConnectOptions> {
    MySqlConnectOptions::from_str(url)
        .map(|o| o.disable_statement_logging())
        .map_err(|e| StoreError::BadUrl(format!("{url} ({e})")))
}

/// The URL with its database removed: `mysql://u@h/db?x=1` becomes `mysql://u@h/?x=1`.
fn without_database(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let authority = before_query.split('/').next().unwrap_or(before_query);
    match query {
        Some(query) => format!("{scheme}://{authority}/?{query}"),
        None => format!("{scheme}://{authority}/"),
    }
}

/// The database a URL names, if any.
pub fn database_in_url(url: &str) -> StoreResult<Option<String>> {
    Ok(parse_url(url)?.get_database().map(str::to_string))
}

async fn connect_direct(options: &MySqlConnectOptions) -> StoreResult<MySqlConnection> {
    Ok(MySqlConnection::connect_with(options).await?)
}

fn validate_database(name: &str) -> StoreResult<()> {
    let mut chars = name.chars();
    let plain = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !plain || name.len() > MAX_DATABASE_LEN {
        return Err(StoreError::Invalid(format!(
            "invalid database name `{name}`: use at most {MAX_DATABASE_LEN} lower-case letters, \
             digits and `_`, not starting with a digit"
        )));
    }
    Ok(())
}

#[async_trait]
impl QueueStore for MysqlStore {
    fn backend(&self) -> &'static str {
        "mysql"
    }

    async fn migrate(&self) -> StoreResult<()> {
        self.migrate_tables().await
    }

    async fn reopen(&self) -> StoreResult<Arc<dyn Store>> {
        Ok(Arc::new(
            MysqlStore::with_options(self.options.clone()).await?,
        ))
    }

    async fn push(&self, jobs: &[NewJob]) -> StoreResult<Vec<PushOutcome>> {
        self.push_jobs(jobs).await
    }

    async fn register_worker(&self, worker: &WorkerInfo, lease: Duration) -> StoreResult<()> {
        self.register(worker, lease).await
    }

    async fn heartbeat(&self, worker_id: &str, lease: Duration) -> StoreResult<Heartbeat> {
        self.beat(worker_id, lease).await
    }

    async fn deregister_worker(&self, worker_id: &str) -> StoreResult<()> {
        self.deregister(worker_id).await
    }

    async fn reserve(
        &self,
        worker_id: &str,
        queues: &[String],
        limit: usize,
    ) -> StoreResult<Vec<ReservedJob>> {
        if limit == 0 || queues.is_empty() {
            return Ok(Vec::new());
        }
        in_transaction!(&self.pool, Begin::Write, |conn| {
            Ok::<_, TxError>(claim::claim(conn, worker_id, queues, limit).await?)
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
        worker_id: &str,
        settlements: &[Settlement],
        queues: &[String],
        limit: usize,
    ) -> StoreResult<(Vec<bool>, Vec<ReservedJob>)> {
        if settlements.is_empty() {
            return Ok((Vec::new(), self.reserve(worker_id, queues, limit).await?));
        }
        // The worker's hot path: ack batch k and claim batch k+1 in one transaction.
        self.settle_then_claim(worker_id, settlements, queues, limit)
            .await
    }

    async fn reap(&self, max_recoveries: u32) -> StoreResult<ReapReport> {
        self.reap_lost(max_recoveries).await
    }

    async fn next_available_in(&self, queues: &[String]) -> StoreResult<Option<Duration>> {
        self.next_due(queues).await
    }

    fn wakeups(&self) -> Wakeups {
        // A poisoned lock only means another caller panicked mid-start; the slot is still sound.
        let mut poller = self.poller.lock().unwrap_or_else(|e| e.into_inner());
        if !poller.as_ref().is_some_and(poll::Poller::is_running) {
            *poller = poll::Poller::start(self.options.clone(), self.wakeup.clone());
        }
        self.wakeup.subscribe()
    }

    async fn restart_epoch(&self) -> StoreResult<i64> {
        self.epoch().await
    }
}

#[async_trait]
impl AdminStore for MysqlStore {
    async fn stats(&self) -> StoreResult<Stats> {
        self.stats_snapshot().await
    }

    async fn jobs(&self, filter: &JobFilter) -> StoreResult<Vec<JobInfo>> {
        self.list_jobs(filter).await
    }

    async fn job(&self, id: &str) -> StoreResult<Option<JobInfo>> {
        self.one_job(id).await
    }

    async fn delete_job(&self, id: &str) -> StoreResult<bool> {
        self.delete_waiting(id).await
    }

    async fn run_job_now(&self, id: &str) -> StoreResult<bool> {
        self.run_now(id).await
    }

    async fn clear(&self, queue: &str) -> StoreResult<u64> {
        self.clear_queue(queue).await
    }

    async fn failed_jobs(&self, filter: &FailedFilter) -> StoreResult<(Vec<FailedJob>, u64)> {
        self.list_failed(filter).await
    }

    async fn failed_job(&self, id: &str) -> StoreResult<Option<FailedJob>> {
        self.one_failed(id).await
    }

    async fn retry_failed(&self, selector: &RetrySelector) -> StoreResult<Vec<String>> {
        self.retry(selector).await
    }

    async fn forget_failed(&self, id: &str) -> StoreResult<bool> {
        self.forget(id).await
    }

    async fn flush_failed(&self) -> StoreResult<u64> {
        self.flush().await
    }

    async fn prune_failed(&self, age: Duration) -> StoreResult<u64> {
        self.prune(age).await
    }

    async fn signal_restart(&self) -> StoreResult<i64> {
        self.restart().await
    }
}

#[async_trait]
impl WorkflowStore for MysqlStore {
    async fn create_batch(
        &self,
        batch: &NewBatch,
        jobs: &[NewJob],
    ) -> StoreResult<Vec<PushOutcome>> {
        self.create_batch_tx(batch, jobs).await
    }

    async fn add_to_batch(&self, batch_id: &str, jobs: &[NewJob]) -> StoreResult<Vec<PushOutcome>> {
        self.add_to_batch_tx(batch_id, jobs).await
    }

    async fn batch(&self, id: &str) -> StoreResult<Option<BatchInfo>> {
        self.one_batch(id).await
    }

    async fn batches(&self, limit: u32) -> StoreResult<Vec<BatchInfo>> {
        self.list_batches(limit).await
    }

    async fn cancel_batch(&self, id: &str) -> StoreResult<bool> {
        self.cancel_batch_now(id).await
    }

    async fn prune_batches(&self, prune: BatchPrune) -> StoreResult<u64> {
        self.prune_batches_now(prune).await
    }

    async fn limit(&self, key: &str, window: Duration, mode: LimitMode) -> StoreResult<LimitState> {
        self.limit_tx(key, window, mode).await
    }

    async fn clear_limit(&self, key: &str) -> StoreResult<()> {
        self.clear_limit_now(key).await
    }

    async fn acquire_slot(&self, worker_id: &str, request: &SlotRequest) -> StoreResult<bool> {
        self.acquire_slot_tx(worker_id, request).await
    }

    async fn set_progress(
        &self,
        worker_id: &str,
        id: &str,
        token: i64,
        progress: &Progress,
    ) -> StoreResult<bool> {
        self.set_progress_now(worker_id, id, token, progress).await
    }

    async fn job_result(&self, id: &str) -> StoreResult<Option<CompletedJob>> {
        self.job_result_now(id).await
    }

    async fn prune_results(&self, age: Duration) -> StoreResult<u64> {
        self.prune_results_now(age).await
    }
}

impl std::fmt::Debug for MysqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MysqlStore")
            .field("database", &self.database())
            .field("server", &self.version.to_string())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_is_cut_from_urls() {
        assert_eq!(without_database("mysql://a:b@h:1/db"), "mysql://a:b@h:1/");
        assert_eq!(
            without_database("mysql://a@h/db?ssl-mode=disabled"),
            "mysql://a@h/?ssl-mode=disabled"
        );
        assert_eq!(without_database("mariadb://h"), "mariadb://h/");
    }

    #[test]
    fn database_names_are_plain_identifiers() {
        for good in [
            "spool",
            "_x",
            "spool_test_1_ab",
            &"a".repeat(MAX_DATABASE_LEN),
        ] {
            assert!(validate_database(good).is_ok(), "{good}");
        }
        let too_long = "a".repeat(MAX_DATABASE_LEN + 1);
        for bad in ["", "Spool", "2x", "a-b", "a`b", "a b", &too_long] {
            assert!(
                matches!(validate_database(bad), Err(StoreError::Invalid(_))),
                "{bad}"
            );
        }
    }
}
