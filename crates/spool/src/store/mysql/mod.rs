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
//! processes come from polling at an adaptive interval (see `wakeups`).
//!
//! Workflow state (unique locks, batches, slots, results, follow-ups) changes in the same
//! transaction as the push, claim or settlement it belongs to, and only when that applied;
//! jobs without any of it take the same statements as before (see `queue/settle.rs`).

use std::{str::FromStr, sync::Mutex, time::Duration};

use sqlx::{
    AssertSqlSafe, ConnectOptions, Connection, Encode, Executor, MySql, MySqlConnection, MySqlPool,
    Type,
    mysql::{MySqlArguments, MySqlConnectOptions, MySqlPoolOptions},
    query::Query,
};

use super::{PushOutcome, StoreError, StoreResult, WakeupSignal, server_url};

use crate::store::sql::fnv1a;

mod admin;
mod control;
mod kv;
mod metrics;
mod migrate;
mod one_statement;
mod queue;
mod retry;
mod rows;
mod search;
mod wakeups;
mod workflow;

pub use migrate::{Flavor, MINIMUM_VERSIONS, ServerVersion};

pub(crate) use retry::{
    is_misconfigured as is_misconfigured_error, is_unavailable as is_unavailable_error,
};

/// Connections per store. Each worker process holds one store; its queries are short, so a
/// few connections serve many concurrent jobs without crowding the server's connection limit.
const MAX_CONNECTIONS: u32 = 8;
/// How long a query waits for a free connection before the store reports itself unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// Statements run on every new connection. READ COMMITTED: no gap locks (see the module
/// docs). A lock wait shorter than the default 50 s: the rare wait that happens is retried.
const SESSION_SETUP: &str = include_str!("sql/session.sql");
/// Longest database name MySQL accepts.
const MAX_DATABASE_LEN: usize = 64;

/// The MySQL / MariaDB store. Open it with [`crate::connect`] and a `mysql://` (or
/// `mariadb://`) URL, or with [`MysqlStore::open_in_database`].
pub struct MysqlStore {
    /// Where every connection goes, for [`QueueStore::reopen`](super::QueueStore::reopen) and the poller.
    options: MySqlConnectOptions,
    pool: MySqlPool,
    version: ServerVersion,
    wakeup: WakeupSignal,
    /// Started by the first [`QueueStore::wakeups`](super::QueueStore::wakeups) call; stopped when the store is dropped.
    poller: Mutex<Option<wakeups::Poller>>,
}

impl MysqlStore {
    /// Opens a pool to the database a `mysql://USER:PASSWORD@HOST:PORT/DB` URL names, after
    /// checking the server's version. Call [`QueueStore::migrate`](super::QueueStore::migrate) (or use [`crate::connect`])
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
        on_server(url, database, include_str!("sql/create_database.sql")).await
    }

    /// Drops a database and everything in it (for test and benchmark runs).
    pub async fn drop_database(url: &str, database: &str) -> StoreResult<()> {
        on_server(url, database, include_str!("sql/drop_database.sql")).await
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
        let version = migrate::check_server(&mut conn).await?;
        conn.close().await?;
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

    /// Wakes this process's idle workers if a push stored anything.
    fn woken_if_queued(&self, outcomes: &[PushOutcome]) {
        if outcomes.contains(&PushOutcome::Queued) {
            self.wakeup.notify();
        }
    }
}

/// The driver's options for a URL (user and password percent-decoded), without sqlx's
/// statement logging (see the PostgreSQL store's `connect_options`).
fn parse_url(url: &str) -> StoreResult<MySqlConnectOptions> {
    server_url::parse(url)?;
    MySqlConnectOptions::from_str(url)
        .map(|o| o.disable_statement_logging())
        .map_err(|e| StoreError::bad_url(url, e))
}

/// The URL with its database removed: `mysql://u@h/db?x=1` becomes `mysql://u@h/?x=1`.
fn without_database(url: &str) -> StoreResult<String> {
    let mut parsed = server_url::parse(url)?;
    parsed.set_path("/");
    Ok(parsed.into())
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

/// The database clock in milliseconds since the epoch (D-7). `NOW(3)` is fixed for the length of
/// one statement, so a statement reads one instant however often it names the clock; sessions
/// run with `time_zone = '+00:00'`, so converting it back with `UNIX_TIMESTAMP` is exact.
const NOW_MS: &str = "CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)";

/// Rows per multi-row statement: well under the protocol's 65,535 placeholders.
const ROWS_PER_STATEMENT: usize = 500;

/// Counters are spread over this many rows of `spool_meta` (see sql/schema.sql).
const COUNTER_SLOTS: u64 = 16;

/// The counter slot the reaper and operator commands bump (workers use their own).
const ADMIN_SLOT: i64 = 0;

/// A statement of `sql/` with `{now}` replaced by [`NOW_MS`]. Everything substituted is a
/// constant or a list of `?` placeholders, so the result is safe to run.
fn sql(template: &str) -> AssertSqlSafe<String> {
    AssertSqlSafe(template.replace("{now}", NOW_MS))
}

/// [`sql`], with each `{name}` of `parts` replaced by its text (placeholder lists, and names
/// checked to be plain identifiers).
fn sql_with(template: &str, parts: &[(&str, &str)]) -> AssertSqlSafe<String> {
    // The parts first: a part may name the clock too.
    let mut text = template.to_string();
    for (name, part) in parts {
        text = text.replace(&format!("{{{name}}}"), part);
    }
    sql(&text)
}

/// A single-row `INSERT ... VALUES (...)` of `sql/` made into one of `rows` rows: the tuple
/// after the last `VALUES` is repeated.
fn values(template: &str, rows: usize) -> AssertSqlSafe<String> {
    let template = template.trim_end();
    let at = template
        .rfind("VALUES")
        .expect("an INSERT ... VALUES statement")
        + "VALUES".len();
    let (head, row) = template.split_at(at);
    sql(&format!("{head} {}", vec![row.trim(); rows].join(", ")))
}

/// Runs `template` about `database` (a plain name, checked here) on the server a URL points
/// at, on a connection of its own that names no database (the URL's own need not exist).
async fn on_server(url: &str, database: &str, template: &str) -> StoreResult<()> {
    validate_database(database)?;
    let mut conn = connect_direct(&parse_url(&without_database(url)?)?).await?;
    conn.execute(sql_with(template, &[("database", database)]))
        .await?;
    conn.close().await?;
    Ok(())
}

/// `?, ?, ?`: `n` placeholders for an `IN (...)` list.
fn list(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// One statement of an `IN (...)` over a chunk: `template` with its `{name}` list sized to
/// `values`, each of them bound in order.
fn in_list<'q, 'v, V: Encode<'v, MySql> + Type<MySql>>(
    template: &str,
    name: &str,
    values: impl ExactSizeIterator<Item = V>,
) -> Query<'q, MySql, MySqlArguments> {
    let mut query = sqlx::query(sql_with(template, &[(name, &list(values.len()))]));
    for value in values {
        query = query.bind(value);
    }
    query
}

/// `(?, ?), (?, ?)`: `rows` tuples of `width` placeholders.
fn tuples(rows: usize, width: usize) -> String {
    let one = format!("({})", list(width));
    vec![one; rows].join(", ")
}

/// The counter slot a worker bumps: a stable hash of its id, so each worker keeps to one row
/// and concurrent workers mostly to different rows.
fn slot(worker_id: &str) -> i64 {
    (fnv1a(worker_id.as_bytes()) % COUNTER_SLOTS) as i64
}

/// Adds to the `processed` and `changes` counters of `slot`, inside the caller's transaction.
/// Call it last in a transaction: the rows are shared with other workers, so they should stay
/// locked only until the commit that follows.
async fn bump_counters(
    conn: &mut MySqlConnection,
    slot: i64,
    processed: u64,
    changes: u64,
) -> Result<(), sqlx::Error> {
    if processed == 0 && changes == 0 {
        return Ok(());
    }
    // One statement for both; rows are locked in key order (`changes` before `processed`),
    // the same order every transaction uses, so bumps never deadlock each other.
    sqlx::query(include_str!("sql/bump_counters.sql"))
        .bind(i64::try_from(processed).unwrap_or(i64::MAX))
        .bind(i64::try_from(changes).unwrap_or(i64::MAX))
        .bind(slot)
        .bind(if processed > 0 {
            "processed"
        } else {
            "changes"
        })
        .bind(if changes > 0 { "changes" } else { "processed" })
        .execute(conn)
        .await?;
    Ok(())
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
        assert_eq!(
            without_database("mysql://a:b@h:1/db").unwrap(),
            "mysql://a:b@h:1/"
        );
        assert_eq!(
            without_database("mysql://a@h/db?ssl-mode=disabled").unwrap(),
            "mysql://a@h/?ssl-mode=disabled"
        );
        assert_eq!(without_database("mariadb://h").unwrap(), "mariadb://h/");
        assert_eq!(
            without_database("mysql://a:p@ss%2F@h/db").unwrap(),
            "mysql://a:p%40ss%2F@h/"
        );
    }

    #[test]
    fn placeholders_and_slots() {
        assert_eq!(list(3), "?, ?, ?");
        assert_eq!(tuples(2, 2), "(?, ?), (?, ?)");
        assert!(sql("SELECT {now}").0.contains("NOW(3)"));
        assert_eq!(
            sql_with("DROP DATABASE `{database}`", &[("database", "x")]).0,
            "DROP DATABASE `x`"
        );
        assert_eq!(
            sql_with("SELECT {columns}", &[("columns", "{now} AS t")]).0,
            format!("SELECT {NOW_MS} AS t")
        );
        assert_eq!(
            values("INSERT INTO t (a, b) VALUES (?, {now})\n", 2).0,
            format!("INSERT INTO t (a, b) VALUES (?, {NOW_MS}), (?, {NOW_MS})")
        );
        assert_eq!(slot("w-1"), slot("w-1"));
        assert!((0..COUNTER_SLOTS as i64).contains(&slot("anything")));
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
