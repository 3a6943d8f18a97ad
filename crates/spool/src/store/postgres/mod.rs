//! The PostgreSQL store: many worker processes on many machines share one database.
//!
//! Spool's tables live in a schema of their own (default `spool`) with their own migrations
//! table, so they can sit next to an app's tables. Every time comes from the database clock
//! (`<schema>.now_ms()`, D-7), never from the caller's. Workers claim jobs with
//! `FOR UPDATE SKIP LOCKED` walking a partial index of ready jobs, settle whole batches with
//! one statement per kind, and wake each other with `LISTEN`/`NOTIFY` on `<schema>_jobs`.
//!
//! Statements are written with a `{schema}` placeholder that is replaced by the quoted,
//! validated schema name. Most use a `clock` CTE so that a statement reads the clock once: the
//! volatile `now_ms()` is evaluated a single time and the planner can use its value as an
//! index bound.

use crate::store::{AdminStore, QueueStore, WorkflowStore};
use std::{
    str::FromStr,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use sqlx::{
    AssertSqlSafe, Connection, PgConnection, PgPool, Postgres, QueryBuilder,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use super::{
    BatchInfo, BatchPrune, CompletedJob, FailedFilter, FailedJob, Heartbeat, JobFilter, JobInfo,
    JobState, LimitMode, LimitState, NewBatch, NewJob, Progress, PushOutcome, QueueStats,
    ReapReport, ReservedJob, RetrySelector, Settlement, SlotRequest, Stats, Store, StoreError,
    StoreResult, WakeupSignal, Wakeups, WorkerInfo, WorkerStatus,
};
use crate::duration::millis;

mod batch;
mod listen;
mod workflow;

use super::sql::{outcomes::push_outcomes, rows};
use batch::{SettlementBatch, applied_in_order};
use workflow::Ended;

const SCHEMA_VERSION: i64 = 2;
/// The schema Spool uses when none is named.
pub const DEFAULT_SCHEMA: &str = "spool";
/// Connections per store. Each worker process holds one store; its queries are short, so a
/// few connections serve many concurrent jobs without crowding the server's connection limit.
const MAX_CONNECTIONS: u32 = 8;
/// Connections for the worker's acks and claims (one fetch loop per worker process).
const HOT_CONNECTIONS: u32 = 2;
/// How long a query waits for a free connection before the store reports itself unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest delay or retry window a time is offset by (about 100 years): larger ones mean
/// "practically never" and would otherwise overflow BIGINT milliseconds.
const MAX_OFFSET_MS: i64 = 100 * 365 * 24 * 3600 * 1000;
/// A notification channel name is an identifier: at most 63 bytes, `_jobs` included.
const MAX_SCHEMA_LEN: usize = 63 - "_jobs".len();

/// The PostgreSQL store. Open it with [`crate::connect`] and a `postgres://` URL, or with
/// [`PostgresStore::open_in_schema`] to keep Spool's tables in a schema other than `spool`.
pub struct PostgresStore {
    /// The URL it was opened with (without `spool_schema`), for [`Store::reopen`].
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
    /// Where the listener connects (the store's own options).
    options: PgConnectOptions,
    wakeup: WakeupSignal,
    /// Started by the first [`Store::wakeups`] call; stopped when the store is dropped.
    listener: Mutex<Option<listen::Listener>>,
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
        self.push_in(conn, jobs, None).await
    }

    /// Opens a pool to the database a `postgres://` URL names, with Spool's tables in the
    /// `spool` schema. Call [`QueueStore::migrate`] (or use [`crate::connect`]) before first use.
    ///
    /// A `spool_schema=NAME` query parameter picks another schema (it is removed before the
    /// URL reaches the driver): `postgres://app@db/app?spool_schema=jobs`.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let (url, schema) = split_schema_param(url);
        Self::open_in_schema(&url, schema.as_deref().unwrap_or(DEFAULT_SCHEMA)).await
    }

    /// Drops a schema and everything in it (used by `spool bench` for its scratch schema).
    pub async fn drop_schema(url: &str, schema: &str) -> StoreResult<()> {
        validate_schema(schema)?;
        let (url, _) = split_schema_param(url);
        let options = PgConnectOptions::from_str(&url)
            .map_err(|e| StoreError::BadUrl(format!("{url} ({e})")))?;
        let mut conn = PgConnection::connect_with(&options).await?;
        sqlx::query(AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
        )))
        .execute(&mut conn)
        .await?;
        conn.close().await?;
        Ok(())
    }

    /// Like [`PostgresStore::open`], with Spool's tables in `schema`: a plain lower-case
    /// identifier (`[a-z_][a-z0-9_]*`, at most 58 bytes, not starting with `pg_`).
    pub async fn open_in_schema(url: &str, schema: &str) -> StoreResult<Self> {
        validate_schema(schema)?;
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::BadUrl(format!("{url} ({e})")))?;
        // One direct connection first: the pool retries a refused connection until its acquire
        // timeout and then reports only that it timed out, while this fails at once and says
        // why (refused, unknown database, bad password).
        PgConnection::connect_with(&options).await?.close().await?;
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
            .connect_lazy_with(options.clone().options([("synchronous_commit", "off")]));
        Ok(PostgresStore {
            url: url.to_string(),
            pool,
            hot,
            schema: schema.to_string(),
            quoted_schema: format!("\"{schema}\""),
            channel: format!("{schema}_jobs"),
            options,
            wakeup: WakeupSignal::default(),
            listener: Mutex::new(None),
        })
    }

    /// The schema holding Spool's tables.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// A statement with `{schema}` replaced by the quoted schema name. The name was validated
    /// as a plain identifier when the store was opened, so the result is safe to run.
    fn sql(&self, template: &str) -> AssertSqlSafe<String> {
        AssertSqlSafe(template.replace("{schema}", &self.quoted_schema))
    }

    /// Queues a notification for every store listening on this schema (this one included);
    /// PostgreSQL delivers it only if and when `tx` commits.
    async fn notify_in(&self, tx: &mut PgConnection) -> StoreResult<()> {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(&self.channel)
            .execute(tx)
            .await?;
        Ok(())
    }

    /// Reserves on `conn` (inside the caller's transaction, or autocommit).
    async fn reserve_in(
        &self,
        conn: &mut PgConnection,
        worker_id: &str,
        queues: &[String],
        limit: usize,
    ) -> StoreResult<Vec<ReservedJob>> {
        // The candidates are picked in a materialised CTE so that they are chosen (and locked)
        // exactly once; SKIP LOCKED lets concurrent reservers take different jobs instead of
        // queueing behind each other. "Unique until processing" locks are released with the
        // claim.
        let sql = self.sql(&format!(
            "WITH clock AS MATERIALIZED (SELECT {{schema}}.now_ms() AS ms),
             picked AS MATERIALIZED (
                 SELECT seq FROM {{schema}}.jobs
                 WHERE queue = $2 AND worker_id IS NULL AND available_at <= (SELECT ms FROM clock)
                 ORDER BY available_at, seq
                 LIMIT $3
                 FOR UPDATE SKIP LOCKED),
             claimed AS (
                 UPDATE {{schema}}.jobs
                 SET worker_id = $1, token = token + 1, reserved_at = (SELECT ms FROM clock),
                     attempts = attempts + 1
                 WHERE seq IN (SELECT seq FROM picked)
                 RETURNING {cols}, unique_key),
             {unlocked}
             SELECT {cols} FROM claimed",
            cols = rows::RESERVED_COLUMNS,
            unlocked = workflow::release_locks_cte("unlocked", "claimed", "processing"),
        ));
        let mut out = Vec::new();
        for queue in queues {
            let want = limit.saturating_sub(out.len());
            if want == 0 {
                break;
            }
            let found = sqlx::query(AssertSqlSafe(sql.0.clone()))
                .bind(worker_id)
                .bind(queue)
                .bind(i64::try_from(want).unwrap_or(i64::MAX))
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

    /// Settles inside the caller's transaction, with every side effect of the settled jobs:
    /// locks and slots released, batches counted (and their callbacks pushed), results kept,
    /// follow-ups pushed. Returns the applied flags and whether jobs became available (a
    /// notification is then queued in the transaction).
    async fn settle_in(
        &self,
        conn: &mut PgConnection,
        worker_id: &str,
        settlements: &[Settlement],
    ) -> StoreResult<(Vec<bool>, bool)> {
        let batch = SettlementBatch::new(settlements);
        // (id, token) of every applied settlement, and the batch jobs among them.
        let mut applied: Vec<(String, i64)> = Vec::with_capacity(settlements.len());
        let mut ended: Vec<Ended> = Vec::new();
        if let Some(json) = &batch.complete {
            // The processed counter is bumped in the same statement, only when something was
            // completed: its row is the one every worker writes, so it is locked as briefly as
            // possible and never for an empty batch.
            let done: Vec<(String, i64, Option<String>)> = sqlx::query_as(self.sql(&format!(
                "WITH clock AS MATERIALIZED (SELECT {{schema}}.now_ms() AS ms),
                 done AS (
                     DELETE FROM {{schema}}.jobs j
                     USING json_to_recordset($1::json) AS d (id text, token bigint, result text)
                     WHERE j.id = d.id AND j.worker_id = $2 AND j.token = d.token
                     RETURNING j.id, j.token, j.queue, j.job, j.batch_id, j.unique_key, d.result),
                 counted AS (
                     INSERT INTO {{schema}}.meta (name, value)
                     SELECT 'processed', COUNT(*) FROM done HAVING COUNT(*) > 0
                     ON CONFLICT (name) DO UPDATE SET value = meta.value + excluded.value),
                 kept AS (
                     INSERT INTO {{schema}}.results (id, queue, job, batch_id, result, completed_at)
                     SELECT id, queue, job, batch_id, result, (SELECT ms FROM clock)
                     FROM done WHERE result IS NOT NULL
                     ON CONFLICT (id) DO UPDATE SET result = excluded.result,
                         completed_at = excluded.completed_at),
                 {unlocked},
                 {freed}
                 SELECT id, token, batch_id FROM done",
                unlocked = workflow::release_locks_cte("unlocked", "done", "done"),
                freed = workflow::free_slots_cte("freed", "done"),
            )))
            .bind(json)
            .bind(worker_id)
            .fetch_all(&mut *conn)
            .await?;
            for (id, token, batch_id) in done {
                // A chain link in a batch hands its membership to its next link.
                let passes_on = |batch_id: &str| {
                    settlements.iter().any(|s| match s {
                        Settlement::Complete {
                            id: settled,
                            token: t,
                            follow_ups,
                            ..
                        } => {
                            *settled == id
                                && *t == token
                                && super::hands_on_batch_membership(batch_id, follow_ups)
                        }
                        _ => false,
                    })
                };
                if let Some(batch_id) = batch_id.filter(|b| !passes_on(b)) {
                    ended.push(Ended {
                        batch_id,
                        job_id: id.clone(),
                        failed: false,
                    });
                }
                applied.push((id, token));
            }
        }
        let mut released_any = false;
        if let Some(json) = &batch.release {
            let released: Vec<(String, i64)> = sqlx::query_as(self.sql(&format!(
                "WITH clock AS MATERIALIZED (SELECT {{schema}}.now_ms() AS ms),
                 released AS (
                     UPDATE {{schema}}.jobs j
                     SET worker_id = NULL, reserved_at = NULL,
                         available_at = (SELECT ms FROM clock) + LEAST(d.delay_ms, $3),
                         attempts = j.attempts - d.refund,
                         deferrals = j.deferrals + d.deferral,
                         exceptions = j.exceptions + d.exception,
                         last_error = COALESCE(d.error, j.last_error)
                     FROM json_to_recordset($1::json) AS d (
                         id text, token bigint, delay_ms bigint, refund bigint, deferral bigint,
                         exception bigint, error text)
                     WHERE j.id = d.id AND j.worker_id = $2 AND j.token = d.token
                     RETURNING j.id, j.token),
                 {freed}
                 SELECT id, token FROM released",
                freed = workflow::free_slots_cte("freed", "released"),
            )))
            .bind(json)
            .bind(worker_id)
            .bind(MAX_OFFSET_MS)
            .fetch_all(&mut *conn)
            .await?;
            released_any = !released.is_empty();
            applied.extend(released);
        }
        if let Some(json) = &batch.fail {
            // Delete and record in one statement: exactly the jobs the fence let through are
            // recorded, even if the reaper takes others between statements.
            let failed: Vec<(String, i64, Option<String>)> = sqlx::query_as(self.sql(&format!(
                "WITH clock AS MATERIALIZED (SELECT {{schema}}.now_ms() AS ms),
                 gone AS (
                     DELETE FROM {{schema}}.jobs j
                     USING json_to_recordset($1::json) AS d (id text, token bigint, error text, causes text)
                     WHERE j.id = d.id AND j.worker_id = $2 AND j.token = d.token
                     RETURNING j.id, j.token, j.queue, j.job, j.envelope, j.attempts, j.batch_id,
                               j.unique_key, d.error, d.causes),
                 recorded AS (
                     INSERT INTO {{schema}}.failed (id, queue, job, envelope, error, causes, attempts,
                                                  failed_at, batch_id)
                     SELECT id, queue, job, envelope, error, causes, attempts, (SELECT ms FROM clock),
                            batch_id
                     FROM gone
                     ON CONFLICT (id) DO UPDATE SET queue = excluded.queue, job = excluded.job,
                         envelope = excluded.envelope, error = excluded.error,
                         causes = excluded.causes, attempts = excluded.attempts,
                         failed_at = excluded.failed_at, batch_id = excluded.batch_id),
                 {unlocked},
                 {freed}
                 SELECT id, token, batch_id FROM gone",
                unlocked = workflow::release_locks_cte("unlocked", "gone", "done"),
                freed = workflow::free_slots_cte("freed", "gone"),
            )))
            .bind(json)
            .bind(worker_id)
            .fetch_all(&mut *conn)
            .await?;
            for (id, token, batch_id) in failed {
                if let Some(batch_id) = batch_id {
                    ended.push(Ended {
                        batch_id,
                        job_id: id.clone(),
                        failed: true,
                    });
                }
                applied.push((id, token));
            }
        }
        let fired = self.count_in_batches_in(conn, &ended).await?;
        let follow_ups = workflow::applied_follow_ups(settlements, &applied);
        let pushed = self
            .push_in(conn, &follow_ups, None)
            .await?
            .contains(&PushOutcome::Queued);
        let wake = released_any || fired > 0 || pushed;
        if wake {
            self.notify_in(conn).await?;
        }
        let ids: Vec<String> = applied.into_iter().map(|(id, _)| id).collect();
        Ok((applied_in_order(settlements, &ids), wake))
    }

    /// Completes `settlements` (all plain completions: no follow-ups, no result) and claims up
    /// to `limit` jobs of `queue` in one statement, so one round trip: data-modifying CTEs for
    /// both, and the two results told apart by the last columns (the completed id, NULL on
    /// claimed rows). The unique locks and slots of the completed jobs are released in the
    /// same statement.
    ///
    /// Counting a job in its batch takes more than a CTE can do cheaply (locking the batch
    /// rows, reading their callbacks, pushing the due ones), so if any of the settled jobs
    /// belongs to a batch the statement changes nothing, and returns `None`: the caller then
    /// takes the general path, which settles with every side effect in one transaction. The
    /// check is one more index probe per settled id, in the same statement; plain jobs pay
    /// nothing else.
    async fn complete_and_claim(
        &self,
        worker_id: &str,
        settlements: &[Settlement],
        queue: &str,
        limit: usize,
    ) -> StoreResult<Option<(Vec<bool>, Vec<ReservedJob>)>> {
        use sqlx::Row;
        let batch = SettlementBatch::new(settlements);
        let sql = self.sql(&format!(
            "WITH clock AS MATERIALIZED (SELECT {{schema}}.now_ms() AS ms),
             settled AS MATERIALIZED (
                 SELECT * FROM json_to_recordset($1::json) AS d (id text, token bigint)),
             in_batch AS MATERIALIZED (
                 SELECT EXISTS (
                     SELECT 1 FROM {{schema}}.jobs j JOIN settled d ON j.id = d.id
                     WHERE j.worker_id = $2 AND j.token = d.token AND j.batch_id IS NOT NULL)
                 AS found),
             done AS (
                 DELETE FROM {{schema}}.jobs j USING settled d
                 WHERE j.id = d.id AND j.worker_id = $2 AND j.token = d.token
                   AND j.batch_id IS NULL AND NOT (SELECT found FROM in_batch)
                 RETURNING j.id, j.unique_key),
             counted AS (
                 INSERT INTO {{schema}}.meta (name, value)
                 SELECT 'processed', COUNT(*) FROM done HAVING COUNT(*) > 0
                 ON CONFLICT (name) DO UPDATE SET value = meta.value + excluded.value),
             {done_unlocked},
             {freed},
             picked AS MATERIALIZED (
                 SELECT seq FROM {{schema}}.jobs
                 WHERE queue = $3 AND worker_id IS NULL AND available_at <= (SELECT ms FROM clock)
                   AND NOT (SELECT found FROM in_batch)
                 ORDER BY available_at, seq
                 LIMIT $4
                 FOR UPDATE SKIP LOCKED),
             claimed AS (
                 UPDATE {{schema}}.jobs
                 SET worker_id = $2, token = token + 1, reserved_at = (SELECT ms FROM clock),
                     attempts = attempts + 1
                 WHERE seq IN (SELECT seq FROM picked)
                 RETURNING {cols}, unique_key),
             {claim_unlocked}
             SELECT {cols}, NULL::text AS done_id, false AS in_batch FROM claimed
             UNION ALL
             SELECT NULL::text, NULL::text, NULL::text, NULL::bigint, NULL::bigint, NULL::bigint,
                    NULL::bigint, NULL::bigint, NULL::bigint, NULL::text, NULL::bigint,
                    NULL::bigint, NULL::bigint, id, false FROM done
             UNION ALL
             SELECT NULL::text, NULL::text, NULL::text, NULL::bigint, NULL::bigint, NULL::bigint,
                    NULL::bigint, NULL::bigint, NULL::bigint, NULL::text, NULL::bigint,
                    NULL::bigint, NULL::bigint, NULL::text, true FROM in_batch WHERE found",
            cols = rows::RESERVED_COLUMNS,
            done_unlocked = workflow::release_locks_cte("done_unlocked", "done", "done"),
            freed = workflow::free_slots_cte("freed", "done"),
            claim_unlocked = workflow::release_locks_cte("claim_unlocked", "claimed", "processing"),
        ));
        let found = sqlx::query(sql)
            .bind(batch.complete.as_deref().unwrap_or("[]"))
            .bind(worker_id)
            .bind(queue)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.hot)
            .await?;
        let mut done = Vec::new();
        let mut claimed = Vec::new();
        for row in &found {
            if row.try_get::<bool, _>(14)? {
                return Ok(None);
            }
            match row.try_get::<Option<String>, _>(13)? {
                Some(id) => done.push(id),
                None => claimed.push(rows::reserved(row)?),
            }
        }
        Ok(Some((
            applied_in_order(settlements, &done),
            rows::in_claim_order(claimed),
        )))
    }

    /// The advisory lock that serialises migrations of this schema (and only this schema).
    fn migration_lock_key(&self) -> i64 {
        fnv1a(format!("spool migrate {}", self.schema).as_bytes()) as i64
    }
}

/// Splits a `spool_schema=NAME` query parameter off a URL.
fn split_schema_param(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), None);
    };
    let mut schema = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|kv| match kv.strip_prefix("spool_schema=") {
            Some(name) => {
                schema = Some(name.to_string());
                false
            }
            None => true,
        })
        .collect();
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    (url, schema)
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

/// 64-bit FNV-1a: a stable hash (unlike std's) so every process derives the same lock key.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn offset_ms(d: Duration) -> i64 {
    millis(d).min(MAX_OFFSET_MS)
}

fn fenced_ids(rows: Vec<(String,)>) -> Vec<String> {
    rows.into_iter().map(|(id,)| id).collect()
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[async_trait]
impl QueueStore for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn migrate(&self) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        // Held until commit: concurrent first-time migrations of the same schema queue here
        // instead of racing on CREATE.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(self.migration_lock_key())
            .execute(&mut *tx)
            .await?;
        // CREATE SCHEMA IF NOT EXISTS checks the CREATE privilege even when the schema exists,
        // so look first: a DBA may have created it for a role that cannot create schemas.
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                .bind(&self.schema)
                .fetch_one(&mut *tx)
                .await?;
        if !exists {
            sqlx::query(self.sql("CREATE SCHEMA {schema}"))
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(self.sql(
            "CREATE TABLE IF NOT EXISTS {schema}.spool_migrations (
                 version    BIGINT PRIMARY KEY,
                 applied_at BIGINT NOT NULL
             )",
        ))
        .execute(&mut *tx)
        .await?;
        let current: Option<i64> =
            sqlx::query_scalar(self.sql("SELECT MAX(version) FROM {schema}.spool_migrations"))
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
            sqlx::raw_sql(self.sql(include_str!("schema.sql")))
                .execute(&mut *tx)
                .await?;
            sqlx::query(self.sql(
                "INSERT INTO {schema}.spool_migrations (version, applied_at)
                 VALUES (1, {schema}.now_ms())",
            ))
            .execute(&mut *tx)
            .await?;
        }
        if current < 2 {
            sqlx::raw_sql(self.sql(include_str!("schema_v2.sql")))
                .execute(&mut *tx)
                .await?;
            sqlx::query(self.sql(
                "INSERT INTO {schema}.spool_migrations (version, applied_at)
                 VALUES (2, {schema}.now_ms())",
            ))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn reopen(&self) -> StoreResult<Arc<dyn Store>> {
        Ok(Arc::new(
            PostgresStore::open_in_schema(&self.url, &self.schema).await?,
        ))
    }

    async fn push(&self, jobs: &[NewJob]) -> StoreResult<Vec<PushOutcome>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        // One statement in autocommit: the push is durable once it returns.
        let mut conn = self.pool.acquire().await?;
        let outcomes = self.push_in(&mut conn, jobs, None).await?;
        self.woken_if_queued(&outcomes);
        Ok(outcomes)
    }

    async fn register_worker(&self, worker: &WorkerInfo, lease: Duration) -> StoreResult<()> {
        sqlx::query(self.sql(
            "WITH clock AS MATERIALIZED (SELECT {schema}.now_ms() AS ms)
             INSERT INTO {schema}.workers (id, host, pid, queues, started_at, expires_at)
             SELECT $1, $2, $3, $4, c.ms, c.ms + $5 FROM clock c
             ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at",
        ))
        .bind(&worker.id)
        .bind(&worker.host)
        .bind(i64::from(worker.pid))
        .bind(&worker.queues)
        .bind(offset_ms(lease))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn heartbeat(&self, worker_id: &str, lease: Duration) -> StoreResult<Heartbeat> {
        // One round trip: extend the lease and read the restart epoch together.
        let (kept, epoch): (bool, i64) = sqlx::query_as(self.sql(
            "WITH beat AS (
                 UPDATE {schema}.workers SET expires_at = {schema}.now_ms() + $2
                 WHERE id = $1 RETURNING 1)
             SELECT EXISTS (SELECT 1 FROM beat),
                    COALESCE((SELECT value FROM {schema}.meta WHERE name = 'restart_epoch'), 0)",
        ))
        .bind(worker_id)
        .bind(offset_ms(lease))
        .fetch_one(&self.pool)
        .await?;
        Ok(Heartbeat {
            lease_kept: kept,
            restart_epoch: epoch,
        })
    }

    async fn deregister_worker(&self, worker_id: &str) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        let returned = sqlx::query(self.sql(
            "UPDATE {schema}.jobs SET worker_id = NULL, reserved_at = NULL, attempts = attempts - 1
             WHERE worker_id = $1",
        ))
        .bind(worker_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(self.sql("DELETE FROM {schema}.workers WHERE id = $1"))
            .bind(worker_id)
            .execute(&mut *tx)
            .await?;
        if returned > 0 {
            self.notify_in(&mut tx).await?;
        }
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
        let mut conn = self.pool.acquire().await?;
        self.reserve_in(&mut conn, worker_id, queues, limit).await
    }

    async fn settle(&self, worker_id: &str, settlements: &[Settlement]) -> StoreResult<Vec<bool>> {
        if settlements.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await?;
        let (applied, wake) = self.settle_in(&mut tx, worker_id, settlements).await?;
        tx.commit().await?;
        if wake {
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
        let plain_completions = settlements.iter().all(|st| {
            matches!(st, Settlement::Complete { follow_ups, result, .. }
                if follow_ups.is_empty() && result.is_none())
        });
        if !settlements.is_empty() && plain_completions && queues.len() == 1 {
            // The common case (a busy worker on one queue): ack and claim in one statement,
            // unless a settled job belongs to a batch (then nothing was done: settle below).
            if let Some(done) = self
                .complete_and_claim(worker_id, settlements, &queues[0], limit)
                .await?
            {
                return Ok(done);
            }
        }
        if settlements.is_empty() {
            // A lone claim needs no transaction around it: one round trip per queue.
            let mut conn = self.hot.acquire().await?;
            return Ok((
                Vec::new(),
                self.reserve_in(&mut conn, worker_id, queues, limit).await?,
            ));
        }
        // On the hot pool (`synchronous_commit = off`): see [`PostgresStore::hot`] for why
        // the side effects committed here may be lost only together with the settlement.
        let mut tx = self.hot.begin().await?;
        let (applied, wake) = self.settle_in(&mut tx, worker_id, settlements).await?;
        let jobs = self.reserve_in(&mut tx, worker_id, queues, limit).await?;
        tx.commit().await?;
        if wake {
            self.wakeup.notify();
        }
        Ok((applied, jobs))
    }

    async fn reap(&self, max_recoveries: u32) -> StoreResult<ReapReport> {
        // One statement, so one clock reading and one snapshot decide which workers are dead.
        // The jobs are matched on (seq, worker, token): if the holder settles a job while this
        // runs, PostgreSQL re-checks the updated row and the stale match drops out.
        let mut tx = self.pool.begin().await?;
        // Reserved jobs are few and the partial holder index finds them, but under fast churn the
        // index fills with entries of jobs already completed until vacuum runs, and with lagging
        // statistics the planner scans the table or does a bitmap scan (measured: ~1 s per reap
        // at a million jobs). A plain index scan marks dead entries as it passes, so the next
        // reap skips them (~5 ms): forbid the other plans.
        for setting in [
            "SET LOCAL enable_seqscan = off",
            "SET LOCAL enable_bitmapscan = off",
        ] {
            sqlx::query(setting).execute(&mut *tx).await?;
        }
        // Poison pills fail like any final failure: recorded with their batch, their locks
        // released, counted in their batch. The slots of dead workers are freed with them.
        let (failed, recovered, workers_removed, poisoned_ids, poisoned_batches): (
            i64,
            i64,
            i64,
            Vec<String>,
            Vec<String>,
        ) = sqlx::query_as(self.sql(
            "WITH clock AS MATERIALIZED (SELECT {schema}.now_ms() AS ms),
             lost AS MATERIALIZED (
                 SELECT j.seq, j.worker_id, j.token FROM {schema}.jobs j
                 WHERE j.worker_id IS NOT NULL
                   AND NOT EXISTS (SELECT 1 FROM {schema}.workers w
                                   WHERE w.id = j.worker_id AND w.expires_at > (SELECT ms FROM clock))),
             poisoned AS (
                 DELETE FROM {schema}.jobs j USING lost
                 WHERE j.seq = lost.seq AND j.worker_id = lost.worker_id AND j.token = lost.token
                   AND j.recoveries + 1 >= $1
                 RETURNING j.id, j.queue, j.job, j.envelope, j.attempts, j.recoveries, j.last_error,
                           j.batch_id, j.unique_key),
             recorded AS (
                 INSERT INTO {schema}.failed (id, queue, job, envelope, error, causes, attempts, failed_at,
                                              batch_id)
                 SELECT id, queue, job, envelope,
                        'worker lost ' || (recoveries + 1) || ' times while running this job',
                        json_build_array(COALESCE(last_error, 'no error recorded before the losses'))::text,
                        attempts, (SELECT ms FROM clock), batch_id
                 FROM poisoned
                 ON CONFLICT (id) DO UPDATE SET error = excluded.error, causes = excluded.causes,
                     attempts = excluded.attempts, failed_at = excluded.failed_at,
                     batch_id = excluded.batch_id),
             unlocked AS (
                 DELETE FROM {schema}.locks l USING poisoned p
                 WHERE p.unique_key IS NOT NULL AND l.key = p.unique_key AND l.owner = p.id
                   AND l.until = 'done'),
             expired_locks AS (
                 -- Periodic jobs leave one expiring lock per tick.
                 DELETE FROM {schema}.locks
                 WHERE expires_at IS NOT NULL AND expires_at <= (SELECT ms FROM clock)),
             freed AS (
                 DELETE FROM {schema}.slots s
                 WHERE NOT EXISTS (SELECT 1 FROM {schema}.workers w
                                   WHERE w.id = s.worker_id AND w.expires_at > (SELECT ms FROM clock))),
             recovered AS (
                 UPDATE {schema}.jobs j
                 SET worker_id = NULL, reserved_at = NULL, available_at = (SELECT ms FROM clock),
                     attempts = j.attempts - 1, recoveries = j.recoveries + 1
                 FROM lost
                 WHERE j.seq = lost.seq AND j.worker_id = lost.worker_id AND j.token = lost.token
                   AND j.recoveries + 1 < $1
                 RETURNING 1),
             removed AS (
                 DELETE FROM {schema}.workers WHERE expires_at <= (SELECT ms FROM clock) RETURNING 1)
             SELECT (SELECT COUNT(*) FROM poisoned), (SELECT COUNT(*) FROM recovered),
                    (SELECT COUNT(*) FROM removed),
                    ARRAY(SELECT id FROM poisoned WHERE batch_id IS NOT NULL ORDER BY id),
                    ARRAY(SELECT batch_id FROM poisoned WHERE batch_id IS NOT NULL ORDER BY id)",
        ))
        .bind(i64::from(max_recoveries))
        .fetch_one(&mut *tx)
        .await?;
        let ended: Vec<Ended> = poisoned_ids
            .into_iter()
            .zip(poisoned_batches)
            .map(|(job_id, batch_id)| Ended {
                batch_id,
                job_id,
                failed: true,
            })
            .collect();
        let wake = recovered > 0 || self.count_in_batches_in(&mut tx, &ended).await? > 0;
        if wake {
            self.notify_in(&mut tx).await?;
        }
        tx.commit().await?;
        if wake {
            self.wakeup.notify();
        }
        Ok(ReapReport {
            recovered: count(recovered),
            failed: count(failed),
            workers_removed: count(workers_removed),
        })
    }

    async fn next_available_in(&self, queues: &[String]) -> StoreResult<Option<Duration>> {
        // Idle workers ask this often: one short walk of the ready index per queue instead of
        // a scan of the whole backlog.
        let wait: Option<i64> = sqlx::query_scalar(self.sql(
            "SELECT MIN(first.available_at) - {schema}.now_ms()
             FROM UNNEST($1::text[]) AS q (name),
                  LATERAL (SELECT available_at FROM {schema}.jobs
                           WHERE queue = q.name AND worker_id IS NULL
                           ORDER BY available_at LIMIT 1) AS first",
        ))
        .bind(queues)
        .fetch_one(&self.pool)
        .await?;
        Ok(wait.map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0))))
    }

    fn wakeups(&self) -> Wakeups {
        // A poisoned lock only means another caller panicked mid-start; the slot is still sound.
        let mut listener = self.listener.lock().unwrap_or_else(|e| e.into_inner());
        if !listener.as_ref().is_some_and(listen::Listener::is_running) {
            *listener = listen::Listener::start(
                self.options.clone(),
                self.channel.clone(),
                self.wakeup.clone(),
            );
        }
        self.wakeup.subscribe()
    }

    async fn restart_epoch(&self) -> StoreResult<i64> {
        let epoch: Option<i64> = sqlx::query_scalar(
            self.sql("SELECT value FROM {schema}.meta WHERE name = 'restart_epoch'"),
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(epoch.unwrap_or(0))
    }
}

#[async_trait]
impl AdminStore for PostgresStore {
    async fn stats(&self) -> StoreResult<Stats> {
        // One snapshot, so the counts agree with each other.
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        // COLLATE "C": byte order, as in SQLite, whatever the database's collation.
        let queue_rows: Vec<(String, i64, i64, i64, Option<i64>)> = sqlx::query_as(self.sql(
            "WITH clock AS MATERIALIZED (SELECT {schema}.now_ms() AS ms)
             SELECT j.queue,
                    COUNT(*) FILTER (WHERE j.worker_id IS NULL AND j.available_at <= c.ms),
                    COUNT(*) FILTER (WHERE j.worker_id IS NULL AND j.available_at > c.ms),
                    COUNT(*) FILTER (WHERE j.worker_id IS NOT NULL),
                    c.ms - MIN(j.available_at) FILTER (WHERE j.worker_id IS NULL AND j.available_at <= c.ms)
             FROM {schema}.jobs j, clock c
             GROUP BY j.queue, c.ms
             ORDER BY j.queue COLLATE \"C\"",
        ))
        .fetch_all(&mut *tx)
        .await?;
        let queues = queue_rows
            .into_iter()
            .map(
                |(name, pending, delayed, reserved, oldest_age)| QueueStats {
                    name,
                    pending: count(pending),
                    delayed: count(delayed),
                    reserved: count(reserved),
                    oldest_ready_age_ms: oldest_age.map(count).unwrap_or(0),
                },
            )
            .collect();
        let (processed, failed): (i64, i64) = sqlx::query_as(self.sql(
            "SELECT COALESCE((SELECT value FROM {schema}.meta WHERE name = 'processed'), 0),
                    (SELECT COUNT(*) FROM {schema}.failed)",
        ))
        .fetch_one(&mut *tx)
        .await?;
        let worker_rows: Vec<(String, String, i64, Vec<String>, Vec<String>)> =
            sqlx::query_as(self.sql(
                "SELECT w.id, w.host, w.pid, w.queues,
                        COALESCE((SELECT array_agg(j.id ORDER BY j.seq) FROM {schema}.jobs j
                                  WHERE j.worker_id = w.id), '{}')
                 FROM {schema}.workers w
                 WHERE w.expires_at > {schema}.now_ms()
                 ORDER BY w.started_at, w.id COLLATE \"C\"",
            ))
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let workers = worker_rows
            .into_iter()
            .map(|(id, host, pid, queues, busy)| WorkerStatus {
                id,
                host,
                pid: u32::try_from(pid).unwrap_or(0),
                queues,
                busy,
            })
            .collect();
        Ok(Stats {
            queues,
            processed: count(processed),
            failed: count(failed),
            workers,
        })
    }

    async fn jobs(&self, filter: &JobFilter) -> StoreResult<Vec<JobInfo>> {
        let mut q = QueryBuilder::<Postgres>::new(
            self.sql(&format!(
                "WITH clock AS MATERIALIZED (SELECT {{schema}}.now_ms() AS ms)
             SELECT {}, clock.ms FROM {{schema}}.jobs, clock WHERE true",
                rows::JOB_COLUMNS
            ))
            .0,
        );
        if let Some(queue) = &filter.queue {
            q.push(" AND queue = ").push_bind(queue);
        }
        match filter.state {
            Some(JobState::Pending) => {
                q.push(" AND worker_id IS NULL AND available_at <= clock.ms");
            }
            Some(JobState::Delayed) => {
                q.push(" AND worker_id IS NULL AND available_at > clock.ms");
            }
            Some(JobState::Reserved) => {
                q.push(" AND worker_id IS NOT NULL");
            }
            None => {}
        }
        q.push(" ORDER BY available_at, seq LIMIT ")
            .push_bind(i64::from(filter.limit.unwrap_or(100)));
        let found = q.build().fetch_all(&self.pool).await?;
        Ok(found.iter().map(rows::job_info).collect::<Result<_, _>>()?)
    }

    async fn job(&self, id: &str) -> StoreResult<Option<JobInfo>> {
        let row = sqlx::query(self.sql(&format!(
            "SELECT {}, {{schema}}.now_ms() FROM {{schema}}.jobs WHERE id = $1",
            rows::JOB_COLUMNS
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(rows::job_info).transpose()?)
    }

    async fn delete_job(&self, id: &str) -> StoreResult<bool> {
        // An operator's delete frees the job's unique lock (one held until expiry stays).
        let deleted: bool = sqlx::query_scalar(self.sql(
            "WITH gone AS (
                 DELETE FROM {schema}.jobs WHERE id = $1 AND worker_id IS NULL RETURNING id),
             unlocked AS (
                 DELETE FROM {schema}.locks
                 WHERE owner IN (SELECT id FROM gone) AND until <> 'expiry')
             SELECT EXISTS (SELECT 1 FROM gone)",
        ))
        .bind(id)
        .fetch_one(&self.pool)
        .await?;
        Ok(deleted)
    }

    async fn run_job_now(&self, id: &str) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(self.sql(
            "WITH clock AS MATERIALIZED (SELECT {schema}.now_ms() AS ms)
             UPDATE {schema}.jobs SET available_at = (SELECT ms FROM clock)
             WHERE id = $1 AND worker_id IS NULL AND available_at > (SELECT ms FROM clock)",
        ))
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
        let n: i64 = sqlx::query_scalar(self.sql(
            "WITH gone AS (
                 DELETE FROM {schema}.jobs WHERE queue = $1 AND worker_id IS NULL RETURNING id),
             unlocked AS (
                 DELETE FROM {schema}.locks
                 WHERE owner IN (SELECT id FROM gone) AND until <> 'expiry')
             SELECT COUNT(*) FROM gone",
        ))
        .bind(queue)
        .fetch_one(&self.pool)
        .await?;
        Ok(count(n))
    }

    async fn failed_jobs(&self, filter: &FailedFilter) -> StoreResult<(Vec<FailedJob>, u64)> {
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        let found = sqlx::query(self.sql(&format!(
            "SELECT {} FROM {{schema}}.failed WHERE ($1::text IS NULL OR queue = $1)
             ORDER BY failed_at DESC, id COLLATE \"C\" LIMIT $2",
            rows::FAILED_COLUMNS
        )))
        .bind(&filter.queue)
        .bind(i64::from(filter.limit.unwrap_or(100)))
        .fetch_all(&mut *tx)
        .await?;
        let total: i64 = sqlx::query_scalar(
            self.sql("SELECT COUNT(*) FROM {schema}.failed WHERE ($1::text IS NULL OR queue = $1)"),
        )
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

    async fn failed_job(&self, id: &str) -> StoreResult<Option<FailedJob>> {
        let row = sqlx::query(self.sql(&format!(
            "SELECT {} FROM {{schema}}.failed WHERE id = $1",
            rows::FAILED_COLUMNS
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(rows::failed_job).transpose()?)
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
        let retried: Vec<(String,)> = sqlx::query_as(self.sql(
            "WITH clock AS MATERIALIZED (SELECT {schema}.now_ms() AS ms),
             requeued AS (
                 INSERT INTO {schema}.jobs (id, queue, job, envelope, available_at, retry_until,
                                            created_at, batch_id)
                 SELECT f.id, f.queue, f.job, f.envelope, c.ms,
                        -- No window, no deadline (LEAST alone would turn NULL into the cap).
                        CASE WHEN w.ms IS NOT NULL THEN c.ms + LEAST(w.ms, $4) END,
                        c.ms, f.batch_id
                 FROM {schema}.failed f, clock c,
                      LATERAL (SELECT {schema}.retry_window_ms(f.envelope) AS ms) w
                 WHERE ($1 AND ($2::text IS NULL OR f.queue = $2)) OR (NOT $1 AND f.id = ANY($3))
                    OR ($5::text IS NOT NULL AND f.batch_id = $5)
                 ORDER BY f.failed_at, f.id COLLATE \"C\"
                 ON CONFLICT (id) DO NOTHING
                 RETURNING id, batch_id),
             forgotten AS (
                 DELETE FROM {schema}.failed WHERE id IN (SELECT id FROM requeued)),
             uncounted AS (
                 UPDATE {schema}.batches b
                 SET pending = b.pending + r.n, failed = GREATEST(b.failed - r.n, 0),
                     failed_ids = ARRAY(SELECT x.id FROM unnest(b.failed_ids) WITH ORDINALITY AS x (id, ord)
                                        WHERE x.id <> ALL (r.ids) ORDER BY x.ord),
                     cancelled_at = NULL, finished_at = NULL
                 FROM (SELECT batch_id, COUNT(*) AS n, array_agg(id) AS ids FROM requeued
                       WHERE batch_id IS NOT NULL GROUP BY batch_id) r
                 WHERE b.id = r.batch_id)
             SELECT id FROM requeued",
        ))
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
        let n = sqlx::query(self.sql("DELETE FROM {schema}.failed WHERE id = $1"))
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    async fn flush_failed(&self) -> StoreResult<u64> {
        let n = sqlx::query(self.sql("DELETE FROM {schema}.failed"))
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n)
    }

    async fn prune_failed(&self, age: Duration) -> StoreResult<u64> {
        let n = sqlx::query(
            self.sql("DELETE FROM {schema}.failed WHERE failed_at < {schema}.now_ms() - $1"),
        )
        .bind(offset_ms(age))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n)
    }

    async fn signal_restart(&self) -> StoreResult<i64> {
        // The epoch is the clock's reading, but always at least one past the previous epoch,
        // so it strictly increases even if the clock stands still or steps back.
        let epoch: i64 = sqlx::query_scalar(self.sql(
            "INSERT INTO {schema}.meta (name, value) VALUES ('restart_epoch', {schema}.now_ms())
             ON CONFLICT (name) DO UPDATE SET value = GREATEST(excluded.value, meta.value + 1)
             RETURNING value",
        ))
        .fetch_one(&self.pool)
        .await?;
        Ok(epoch)
    }
}

#[async_trait]
impl WorkflowStore for PostgresStore {
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
        Ok(self.batches_where(Some(id), 1).await?.pop())
    }

    async fn batches(&self, limit: u32) -> StoreResult<Vec<BatchInfo>> {
        self.batches_where(None, limit).await
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
        self.set_progress_now(
            worker_id,
            id,
            token,
            progress.percent,
            progress.message.as_deref(),
        )
        .await
    }

    async fn job_result(&self, id: &str) -> StoreResult<Option<CompletedJob>> {
        self.job_result_now(id).await
    }

    async fn prune_results(&self, age: Duration) -> StoreResult<u64> {
        self.prune_results_now(age).await
    }
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
            split_schema_param("postgres://a@h/db"),
            ("postgres://a@h/db".into(), None)
        );
        assert_eq!(
            split_schema_param("postgres://a@h/db?spool_schema=jobs"),
            ("postgres://a@h/db".into(), Some("jobs".into()))
        );
        assert_eq!(
            split_schema_param("postgres://a@h/db?sslmode=disable&spool_schema=jobs"),
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
    fn lock_keys_are_stable_and_per_schema() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(fnv1a(b"spool migrate a"), fnv1a(b"spool migrate b"));
    }
}
