//! Settling a batch: completions, releases and failures, each fenced on `(worker, token)`,
//! with one statement per kind inside the caller's transaction.
//!
//! MySQL has no `DELETE ... RETURNING`, so telling which settlements applied takes a locking
//! read of the batch's rows first. The worker's usual batch (completions only, each job once)
//! skips it: one fenced `DELETE`, and if it deleted as many rows as there are completions, all
//! applied. Otherwise the transaction is rolled back and run again on the general path.

use std::collections::HashMap;

use sqlx::{MySqlConnection, Row};

use super::{
    retry::TxError,
    sql::{MAX_OFFSET_MS, ROWS_PER_STATEMENT, list, sql, tuples},
};
use crate::{
    duration::millis,
    store::{ReleaseKind, Settlement},
};

/// What a settle did.
#[derive(Debug, Default)]
pub(super) struct Settled {
    /// Per settlement, in input order: whether it applied.
    pub(super) applied: Vec<bool>,
    /// Jobs completed (for the processed counter).
    pub(super) completed: u64,
    /// Jobs released: they are available again, so other processes' idle workers should
    /// look (the `changes` counter).
    pub(super) released: u64,
}

/// Settles `settlements` of `worker_id` on `conn`, inside the caller's transaction. `fast`
/// allows the completions-only path; it is cleared (and [`TxError::Rerun`] returned) when that
/// path cannot tell which completions applied.
pub(super) async fn settle(
    conn: &mut MySqlConnection,
    worker_id: &str,
    settlements: &[Settlement],
    fast: &mut bool,
) -> Result<Settled, TxError> {
    if settlements.is_empty() {
        return Ok(Settled::default());
    }
    if *fast && fast_path_fits(settlements) {
        let deleted = complete_all(conn, worker_id, settlements).await?;
        if deleted == settlements.len() as u64 {
            return Ok(Settled {
                applied: vec![true; settlements.len()],
                completed: deleted,
                released: 0,
            });
        }
        *fast = false;
        return Err(TxError::Rerun);
    }
    Ok(settle_each(conn, worker_id, settlements).await?)
}

/// Completions only, and no job twice.
fn fast_path_fits(settlements: &[Settlement]) -> bool {
    settlements.len() <= ROWS_PER_STATEMENT
        && settlements
            .iter()
            .all(|s| matches!(s, Settlement::Complete { .. }))
        && {
            let mut ids: Vec<&str> = settlements.iter().map(Settlement::id).collect();
            ids.sort_unstable();
            ids.windows(2).all(|w| w[0] != w[1])
        }
}

/// Deletes the completed jobs still held under their tokens; returns how many.
async fn complete_all(
    conn: &mut MySqlConnection,
    worker_id: &str,
    settlements: &[Settlement],
) -> Result<u64, sqlx::Error> {
    // `id IN` makes it a range of the unique index; the pairs are the fence.
    let statement = format!(
        "DELETE FROM spool_jobs WHERE worker_id = ? AND id IN ({}) AND (id, token) IN ({})",
        list(settlements.len()),
        tuples(settlements.len(), 2)
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(statement)).bind(worker_id);
    for s in settlements {
        query = query.bind(s.id());
    }
    for s in settlements {
        if let Settlement::Complete { id, token, .. } = s {
            query = query.bind(id).bind(*token);
        }
    }
    Ok(query.execute(&mut *conn).await?.rows_affected())
}

/// The general path: lock the batch's rows, match tokens, then one statement per kind.
async fn settle_each(
    conn: &mut MySqlConnection,
    worker_id: &str,
    settlements: &[Settlement],
) -> Result<Settled, sqlx::Error> {
    let held = held_rows(conn, worker_id, settlements).await?;
    // Each held row settles at most once: the first settlement presenting its token wins.
    let mut used = std::collections::HashSet::new();
    let matched: Vec<Option<i64>> = settlements
        .iter()
        .map(|s| {
            let token = match s {
                Settlement::Complete { token, .. }
                | Settlement::Release { token, .. }
                | Settlement::Fail { token, .. } => *token,
            };
            held.get(s.id())
                .filter(|(_, held_token)| *held_token == token)
                .map(|(seq, _)| *seq)
                .filter(|seq| used.insert(*seq))
        })
        .collect();

    let mut completed = Vec::new();
    let mut released = Vec::new();
    let mut failed = Vec::new();
    for (s, seq) in settlements.iter().zip(&matched) {
        let Some(seq) = *seq else { continue };
        match s {
            Settlement::Complete { .. } => completed.push(seq),
            Settlement::Release {
                delay, kind, error, ..
            } => released.push((seq, millis(*delay), *kind, error.as_deref())),
            Settlement::Fail { error, causes, .. } => failed.push((
                seq,
                error.as_str(),
                serde_json::to_string(causes).unwrap_or_else(|_| "[]".into()),
            )),
        }
    }
    for chunk in completed.chunks(ROWS_PER_STATEMENT) {
        delete(conn, chunk).await?;
    }
    for chunk in released.chunks(ROWS_PER_STATEMENT) {
        release(conn, chunk).await?;
    }
    for chunk in failed.chunks(ROWS_PER_STATEMENT) {
        fail(conn, chunk).await?;
    }
    Ok(Settled {
        applied: matched.iter().map(Option::is_some).collect(),
        completed: completed.len() as u64,
        released: released.len() as u64,
    })
}

/// The batch's jobs that `worker_id` holds, locked: id → (seq, token).
async fn held_rows(
    conn: &mut MySqlConnection,
    worker_id: &str,
    settlements: &[Settlement],
) -> Result<HashMap<String, (i64, i64)>, sqlx::Error> {
    let mut ids: Vec<&str> = settlements.iter().map(Settlement::id).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut held = HashMap::new();
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let statement = format!(
            "SELECT id, seq, token FROM spool_jobs WHERE worker_id = ? AND id IN ({}) FOR UPDATE",
            list(chunk.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(statement)).bind(worker_id);
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut *conn).await? {
            held.insert(row.try_get(0)?, (row.try_get(1)?, row.try_get(2)?));
        }
    }
    Ok(held)
}

async fn delete(conn: &mut MySqlConnection, seqs: &[i64]) -> Result<(), sqlx::Error> {
    let statement = format!("DELETE FROM spool_jobs WHERE seq IN ({})", list(seqs.len()));
    let mut query = sqlx::query(sqlx::AssertSqlSafe(statement));
    for seq in seqs {
        query = query.bind(*seq);
    }
    query.execute(conn).await?;
    Ok(())
}

/// Puts jobs back, each with its own delay and counter effects (D-2): the per-job values
/// come in as a derived table joined on `seq`.
async fn release(
    conn: &mut MySqlConnection,
    jobs: &[(i64, i64, ReleaseKind, Option<&str>)],
) -> Result<(), sqlx::Error> {
    let first = "SELECT ? AS seq, ? AS delay_ms, ? AS refund, ? AS deferral, ? AS exception, \
                 CAST(? AS CHAR) AS error";
    let rest = " UNION ALL SELECT ?, ?, ?, ?, ?, CAST(? AS CHAR)";
    let statement = format!(
        "UPDATE spool_jobs j JOIN ({first}{}) d ON j.seq = d.seq
         SET j.worker_id = NULL, j.reserved_at = NULL,
             j.available_at = {{now}} + LEAST(d.delay_ms, {MAX_OFFSET_MS}),
             j.attempts = j.attempts - d.refund,
             j.deferrals = j.deferrals + d.deferral,
             j.exceptions = j.exceptions + d.exception,
             j.last_error = COALESCE(d.error, j.last_error)",
        rest.repeat(jobs.len() - 1)
    );
    let mut query = sqlx::query(sql(&statement));
    for (seq, delay_ms, kind, error) in jobs {
        let (refund, deferral, exception) = kind.counter_effects();
        query = query
            .bind(*seq)
            .bind(*delay_ms)
            .bind(refund)
            .bind(deferral)
            .bind(exception)
            .bind(*error);
    }
    query.execute(conn).await?;
    Ok(())
}

/// Moves jobs to the failed store: the record is written from the row itself (envelope,
/// attempts), then the row is deleted; both under the lock taken by [`held_rows`].
async fn fail(conn: &mut MySqlConnection, jobs: &[(i64, &str, String)]) -> Result<(), sqlx::Error> {
    let first = "SELECT ? AS seq, CAST(? AS CHAR) AS error, CAST(? AS CHAR) AS causes";
    let rest = " UNION ALL SELECT ?, CAST(? AS CHAR), CAST(? AS CHAR)";
    // REPLACE: a record left from an earlier failure of the same id is overwritten.
    let statement = format!(
        "REPLACE INTO spool_failed (id, queue, job, envelope, error, causes, attempts, failed_at)
         SELECT j.id, j.queue, j.job, j.envelope, d.error, d.causes, j.attempts, {{now}}
         FROM spool_jobs j JOIN ({first}{}) d ON j.seq = d.seq",
        rest.repeat(jobs.len() - 1)
    );
    let mut query = sqlx::query(sql(&statement));
    for (seq, error, causes) in jobs {
        query = query.bind(*seq).bind(*error).bind(causes);
    }
    query.execute(&mut *conn).await?;
    let seqs: Vec<i64> = jobs.iter().map(|(seq, ..)| *seq).collect();
    delete(conn, &seqs).await
}
