//! The PostgreSQL store: many worker processes on many machines share one database.
//!
//! Spool's tables live in a schema of their own (default `spool`) with their own migrations
//! table, so they can sit next to an app's tables. Every time comes from the database clock
//! (`<schema>.now_ms()`, D-7), never from the caller's. Workers claim jobs with
//! `FOR UPDATE SKIP LOCKED` walking a partial index of ready jobs, settle whole batches with
//! one statement per kind, and wake each other with `LISTEN`/`NOTIFY` on `<schema>_jobs`.
//!
//! Every statement is a file in `sql/`, named after the contract method it serves, written
//! with a `{schema}` placeholder that is replaced by the quoted, validated schema name. Most
//! use a `clock` CTE so that a statement reads the clock once: the volatile `now_ms()` is
//! evaluated a single time and the planner can use its value as an index bound.
//!
//! The contract's parts live in `queue` (with `queue::settle` for settlements and their side
//! effects), `admin` and `workflow`; `migrate` creates the schema and `wakeups` listens for
//! notifications.

use std::{str::FromStr, sync::Mutex, time::Duration};

use sqlx::{
    AssertSqlSafe, ConnectOptions, Connection, PgConnection, PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use super::{NewJob, PushOutcome, StoreError, StoreResult, WakeupSignal, server_url};

use crate::store::sql::fnv1a;

mod admin;
mod control;
mod cursor;
mod kv;
mod metrics;
mod migrate;
mod one_statement;
pub(crate) mod pooler;
mod queue;
mod search;
mod wakeups;
mod workflow;

/// The schema Spool uses when none is named.
pub const DEFAULT_SCHEMA: &str = "spool";
/// Connections per store. Each worker process holds one store; its queries are short, so a
/// few connections serve many concurrent jobs without crowding the server's connection limit.
const MAX_CONNECTIONS: u32 = 8;
/// Connections for the worker's acks and claims (one fetch loop per worker process).
const HOT_CONNECTIONS: u32 = 2;
/// How long a query waits for a free connection before the store reports itself unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// A notification channel name is an identifier: at most 63 bytes, `_jobs` included.
const MAX_SCHEMA_LEN: usize = 63 - "_jobs".len();

/// The PostgreSQL store. Open it with [`crate::connect`] and a `postgres://` URL, or with
/// [`PostgresStore::open_in_schema`] to keep Spool's tables in a schema other than `spool`.
pub struct PostgresStore {
    /// The URL it was opened with (without `spool_schema`), for
    /// [`QueueStore::reopen`](crate::store::QueueStore::reopen).
    url: String,
    pool: PgPool,
    /// The worker's hot path (acks and claims): sessions with `synchronous_commit = off`, so
    /// they don't wait for the WAL flush. If the server crashes before it, completed jobs come
    /// back and run again and claims return to the queue, which at-least-once allows. Pushes
    /// never use it: a dispatched job is durable once `push` returns. A completion's side
    /// effects (batch counters and callbacks, follow-ups, released locks and slots) commit in
    /// the same transaction, so a crash loses them together with the completion, never one
    /// without the other: the job runs again and brings them again.
    hot: PgPool,
    /// The schema name as validated (unquoted).
    schema: String,
    /// `"<schema>"`, substituted for `{schema}` in statements.
    quoted_schema: String,
    /// The notification channel: `<schema>_jobs`.
    channel: String,
    /// Where the listener connects: `listen_url` if the URL names one, else the store's own
    /// options; `None` when nothing can LISTEN (pooled mode without `listen_url`), and idle
    /// workers are woken by polling instead.
    listen: Option<PgConnectOptions>,
    /// Behind a connection pooler (see [`pooler`]): unnamed statements, each in a transaction,
    /// no session settings.
    pooled: bool,
    wakeup: WakeupSignal,
    /// Started by the first [`QueueStore::wakeups`](crate::store::QueueStore::wakeups) call;
    /// stopped when the store is dropped.
    listener: Mutex<Option<crate::store::wakeup::Listener>>,
    /// Where each queue's next claim starts (see `cursor.rs`).
    cursors: cursor::ClaimCursors,
}

impl PostgresStore {
    /// Pushes jobs inside the caller's own transaction: they exist if and only if it commits,
    /// and workers are woken when it does. Unique locks are taken in the same transaction, so a
    /// rollback releases them too.
    ///
    /// ```no_run
    /// # async fn demo(store: &spool::store::postgres::PostgresStore, pool: sqlx::PgPool,
    /// #               job: spool::store::NewJob) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut tx = pool.begin().await?;
    /// sqlx::query("UPDATE invoices SET state = 'sent' WHERE id = 42").execute(&mut *tx).await?;
    /// store.push_in_transaction(&mut tx, &[job]).await?;
    /// tx.commit().await?; // the job exists from here on
    /// # Ok(()) }
    /// ```
    pub async fn push_in_transaction(
        &self,
        conn: &mut PgConnection,
        jobs: &[NewJob],
    ) -> StoreResult<Vec<PushOutcome>> {
        crate::store::check_jobs(jobs)?;
        self.push_in(conn, jobs, None).await
    }

    /// Opens a pool to the database a `postgres://` URL names, with Spool's tables in the
    /// `spool` schema. Call [`QueueStore::migrate`](crate::store::QueueStore::migrate) (or use
    /// [`crate::connect`]) before first use.
    ///
    /// A `spool_schema=NAME` query parameter picks another schema (it is removed before the
    /// URL reaches the driver): `postgres://app@db/app?spool_schema=jobs`.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let (url, schema) = split_schema_param(url)?;
        Self::open_in_schema(&url, schema.as_deref().unwrap_or(DEFAULT_SCHEMA)).await
    }

    /// Drops a schema and everything in it (used by `spool bench` for its scratch schema).
    pub async fn drop_schema(url: &str, schema: &str) -> StoreResult<()> {
        validate_schema(schema)?;
        let (url, _) = split_schema_param(url)?;
        let (url, _) = pooler::split_pooler_params(&url)?;
        let options = connect_options(&url)?;
        let mut conn = PgConnection::connect_with(&options).await?;
        // The simple protocol: no prepared statement, so any pooler passes it.
        sqlx::raw_sql(in_schema(
            include_str!("sql/drop_schema.sql"),
            &quoted(schema),
        ))
        .execute(&mut conn)
        .await?;
        conn.close().await?;
        Ok(())
    }

    /// Like [`PostgresStore::open`], with Spool's tables in `schema`: a plain lower-case
    /// identifier (`[a-z_][a-z0-9_]*`, at most 58 bytes, not starting with `pg_`).
    pub async fn open_in_schema(url: &str, schema: &str) -> StoreResult<Self> {
        validate_schema(schema)?;
        let (driver_url, params) = pooler::split_pooler_params(url)?;
        let options = connect_options(&driver_url)?;
        let hot_session = options.clone().options([("synchronous_commit", "off")]);
        // One direct connection first: the pool retries a refused connection until its acquire
        // timeout and then reports only that it timed out, while this fails at once and says
        // why (refused, unknown database, bad password). Made with the hot path's startup
        // option, it also finds a pooler the URL does not mention: PgBouncer refuses it.
        let pooled = params.pgbouncer
            || match PgConnection::connect_with(&hot_session).await {
                Ok(conn) => {
                    conn.close().await?;
                    false
                }
                Err(e) if pooler::is_startup_parameter_refusal(&e) => {
                    tracing::info!(
                        "a connection pooler refused the startup parameter `options`: \
                         working in pooled mode (add `pgbouncer=true` to the URL to say so)"
                    );
                    true
                }
                Err(e) => return Err(e.into()),
            };
        if pooled {
            PgConnection::connect_with(&options).await?.close().await?;
        }
        let options = if pooled {
            // Nothing is cached by name: a pooler may hand the next transaction to another
            // server connection.
            options.statement_cache_capacity(0)
        } else {
            options
        };
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .min_connections(0)
            // No ping before every use (it would double the hot path's round trips); a dead
            // connection fails its query, is dropped, and the worker retries (D-3).
            .test_before_acquire(false)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options.clone());
        let hot = PgPoolOptions::new()
            .max_connections(HOT_CONNECTIONS)
            .min_connections(0)
            .test_before_acquire(false)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(if pooled { options.clone() } else { hot_session });
        let listen = match &params.listen_url {
            Some(listen_url) => Some(connect_options(listen_url)?),
            None if pooled => None,
            None => Some(options),
        };
        Ok(PostgresStore {
            url: url.to_string(),
            pool,
            hot,
            schema: schema.to_string(),
            quoted_schema: quoted(schema),
            channel: format!("{schema}_jobs"),
            listen,
            pooled,
            wakeup: WakeupSignal::default(),
            listener: Mutex::new(None),
            cursors: cursor::ClaimCursors::default(),
        })
    }

    /// The schema holding Spool's tables.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// A statement of `sql/` with `{schema}` replaced by the quoted schema name. The name was
    /// validated as a plain identifier when the store was opened, so the result is safe to run.
    fn sql(&self, template: &str) -> AssertSqlSafe<String> {
        in_schema(template, &self.quoted_schema)
    }

    /// Queues a notification for every store listening on this schema (this one included);
    /// PostgreSQL delivers it only if and when `tx` commits.
    async fn notify_in(&self, tx: &mut PgConnection) -> StoreResult<()> {
        sqlx::query(include_str!("sql/notify.sql"))
            .persistent(!self.pooled)
            .bind(&self.channel)
            .execute(tx)
            .await?;
        Ok(())
    }

    /// Wakes this process's idle workers if a push stored anything.
    fn woken_if_queued(&self, outcomes: &[PushOutcome]) {
        if outcomes.contains(&PushOutcome::Queued) {
            self.wakeup.notify();
        }
    }
}

/// A validated schema name as a quoted identifier.
fn quoted(schema: &str) -> String {
    format!("\"{schema}\"")
}

/// `template` with `{schema}` replaced by `quoted_schema` (validated, so safe to run).
fn in_schema(template: &str, quoted_schema: &str) -> AssertSqlSafe<String> {
    AssertSqlSafe(template.replace("{schema}", quoted_schema))
}

/// Splits a `spool_schema=NAME` query parameter off a URL.
fn split_schema_param(url: &str) -> StoreResult<(String, Option<String>)> {
    let mut parsed = server_url::parse(url)?;
    let schema = server_url::take_param(&mut parsed, "spool_schema");
    Ok((parsed.into(), schema))
}

/// The driver's options for a URL (without Spool's own parameters; user and password
/// percent-decoded). sqlx's statement logging is off: it logs every statement slower than a
/// second at WARN with its whole text, which is noise from a worker whose statements are known
/// and whose store is busy. `extra_float_digits` is never sent: PgBouncer refuses it as a
/// startup parameter, and PostgreSQL 12 and later print floats exactly without it.
fn connect_options(url: &str) -> StoreResult<PgConnectOptions> {
    server_url::parse(url)?;
    PgConnectOptions::from_str(url)
        .map(|options| options.disable_statement_logging().extra_float_digits(None))
        .map_err(|e| StoreError::bad_url(url, e))
}

fn validate_schema(schema: &str) -> StoreResult<()> {
    let mut chars = schema.chars();
    let plain = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !plain {
        return Err(StoreError::Invalid(format!(
            "invalid schema name `{schema}`: use lower-case letters, digits and `_`, not starting with a digit"
        )));
    }
    if schema.len() > MAX_SCHEMA_LEN {
        return Err(StoreError::Invalid(format!(
            "schema name `{schema}` is too long: at most {MAX_SCHEMA_LEN} characters"
        )));
    }
    if schema.starts_with("pg_") {
        return Err(StoreError::Invalid(format!(
            "schema name `{schema}` is reserved: PostgreSQL keeps `pg_` names for itself"
        )));
    }
    Ok(())
}

fn fenced_ids(rows: Vec<(String,)>) -> Vec<String> {
    rows.into_iter().map(|(id,)| id).collect()
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_parameter_is_split_off() {
        assert_eq!(
            split_schema_param("postgres://a@h/db").unwrap(),
            ("postgres://a@h/db".into(), None)
        );
        assert_eq!(
            split_schema_param("postgres://a@h/db?spool_schema=jobs").unwrap(),
            ("postgres://a@h/db".into(), Some("jobs".into()))
        );
        assert_eq!(
            split_schema_param("postgres://a@h/db?sslmode=disable&spool_schema=jobs").unwrap(),
            (
                "postgres://a@h/db?sslmode=disable".into(),
                Some("jobs".into())
            )
        );
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        for good in ["spool", "_x", "jobs_2", &"a".repeat(MAX_SCHEMA_LEN)] {
            assert!(validate_schema(good).is_ok(), "{good}");
        }
        let too_long = "a".repeat(MAX_SCHEMA_LEN + 1);
        for bad in [
            "",
            "Spool",
            "2jobs",
            "my-jobs",
            "a.b",
            "x\"y",
            "spool; drop",
            "pg_jobs",
            &too_long,
        ] {
            assert!(
                matches!(validate_schema(bad), Err(StoreError::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn statements_select_the_columns_the_decoders_read() {
        use crate::store::sql::rows;
        let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        for (statement, columns) in [
            (include_str!("sql/reserve.sql"), rows::RESERVED_COLUMNS),
            (
                include_str!("sql/settle_and_reserve.sql"),
                rows::RESERVED_COLUMNS,
            ),
            (include_str!("sql/jobs.sql"), rows::JOB_COLUMNS),
            (include_str!("sql/job.sql"), rows::JOB_COLUMNS),
            (include_str!("sql/failed_jobs.sql"), rows::FAILED_COLUMNS),
            (include_str!("sql/failed_job.sql"), rows::FAILED_COLUMNS),
            (include_str!("sql/batches.sql"), rows::BATCH_COLUMNS),
            (include_str!("sql/job_result.sql"), rows::COMPLETED_COLUMNS),
        ] {
            let (statement, columns) = (words(statement), words(columns));
            assert!(
                statement.contains(&format!("SELECT {columns}")),
                "{statement}\nshould select {columns}"
            );
        }
    }
}
