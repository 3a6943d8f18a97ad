//! The per-job workflow state on MySQL: unique locks, concurrency slots held by a job, kept
//! results and reported progress. The functions taking a connection run inside the caller's
//! transaction and do nothing (no statement) when given nothing to do, so plain jobs pay for
//! none of it.

use std::time::Duration;

use sqlx::MySqlConnection;

use super::{
    MysqlStore,
    retry::{Begin, TxError, idempotent, in_transaction},
    sql::{MAX_OFFSET_MS, ROWS_PER_STATEMENT, list, sql, tuples},
};
use crate::{
    duration::millis,
    store::{CompletedJob, Progress, StoreResult, sql::rows},
};

/// Releases the unique locks held `until` the given moment (`done`, `processing`) that these
/// `(key, owner)` pairs own. Only the owner releases a lock: a duplicate that was refused
/// never took it, and a lock another job took since is left alone.
pub(super) async fn release_locks(
    conn: &mut MySqlConnection,
    locks: &[(&str, &str)],
    until: &'static str,
) -> Result<(), sqlx::Error> {
    for chunk in locks.chunks(ROWS_PER_STATEMENT) {
        // `name IN` makes it a range of the primary key; the pairs are the ownership check.
        let statement = format!(
            "DELETE FROM spool_locks WHERE held_until = ? AND name IN ({}) AND (name, owner) IN ({})",
            list(chunk.len()),
            tuples(chunk.len(), 2)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(statement)).bind(until);
        for (key, _) in chunk {
            query = query.bind(*key);
        }
        for (key, owner) in chunk {
            query = query.bind(*key).bind(*owner);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Frees every concurrency slot these jobs hold.
pub(super) async fn free_slots(
    conn: &mut MySqlConnection,
    holders: &[&str],
) -> Result<(), sqlx::Error> {
    for chunk in holders.chunks(ROWS_PER_STATEMENT) {
        let statement = format!(
            "DELETE FROM spool_slots WHERE holder IN ({})",
            list(chunk.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(statement));
        for holder in chunk {
            query = query.bind(*holder);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// A completed job's result, to keep.
#[derive(Debug)]
pub(super) struct KeptResult<'a> {
    pub(super) id: &'a str,
    pub(super) queue: &'a str,
    pub(super) job: &'a str,
    pub(super) batch_id: Option<&'a str>,
    pub(super) result: &'a str,
}

/// Keeps completed jobs' results (replacing an older result of the same id).
pub(super) async fn keep_results(
    conn: &mut MySqlConnection,
    results: &[KeptResult<'_>],
) -> Result<(), sqlx::Error> {
    for chunk in results.chunks(ROWS_PER_STATEMENT) {
        let statement = format!(
            "REPLACE INTO spool_results (id, queue, job, batch_id, result, completed_at) VALUES {}",
            vec!["(?, ?, ?, ?, ?, {now})"; chunk.len()].join(", ")
        );
        let mut query = sqlx::query(sql(&statement));
        for kept in chunk {
            query = query
                .bind(kept.id)
                .bind(kept.queue)
                .bind(kept.job)
                .bind(kept.batch_id)
                .bind(kept.result);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// The reaper's share of workflow state: frees the slots of workers whose lease is gone, and
/// drops expired unique locks (periodic jobs leave one per tick).
pub(super) async fn reap_workflow_state(conn: &mut MySqlConnection) -> Result<(), sqlx::Error> {
    sqlx::query(sql("DELETE s FROM spool_slots s
         LEFT JOIN spool_workers w ON w.id = s.worker_id AND w.expires_at > {now}
         WHERE w.id IS NULL"))
    .execute(&mut *conn)
    .await?;
    sqlx::query(sql(
        "DELETE FROM spool_locks WHERE expires_at IS NOT NULL AND expires_at <= {now}",
    ))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl MysqlStore {
    /// Records a reserved job's progress, fenced like a settlement.
    pub(super) async fn set_progress_now(
        &self,
        worker_id: &str,
        id: &str,
        token: i64,
        progress: &Progress,
    ) -> StoreResult<bool> {
        // Writing the same progress twice is harmless, so a lost connection is simply retried.
        // Rows matched, not rows changed (the driver asks for found rows): reporting the same
        // progress again still counts as held.
        let n = idempotent!(&self.pool, |conn| {
            sqlx::query(
                "UPDATE spool_jobs SET progress = ?, progress_message = ?
                 WHERE id = ? AND worker_id = ? AND token = ?",
            )
            .bind(i64::from(progress.percent.min(100)))
            .bind(progress.message.as_deref())
            .bind(id)
            .bind(worker_id)
            .bind(token)
            .execute(conn)
            .await
        })?
        .rows_affected();
        Ok(n > 0)
    }

    /// A completed job's kept result.
    pub(super) async fn job_result_now(&self, id: &str) -> StoreResult<Option<CompletedJob>> {
        idempotent!(&self.pool, |conn| {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {} FROM spool_results WHERE id = ?",
                rows::RESULT_COLUMNS
            )))
            .bind(id)
            .fetch_optional(conn)
            .await?;
            row.as_ref().map(rows::completed_job).transpose()
        })
    }

    /// Deletes kept results older than `age`.
    pub(super) async fn prune_results_now(&self, age: Duration) -> StoreResult<u64> {
        let age = millis(age).min(MAX_OFFSET_MS);
        in_transaction!(&self.pool, Begin::Write, |conn| {
            let n = sqlx::query(sql(
                "DELETE FROM spool_results WHERE completed_at < {now} - ?",
            ))
            .bind(age)
            .execute(conn)
            .await?
            .rows_affected();
            Ok::<_, TxError>(n)
        })
    }
}
