//! Operator commands: deleting, running and clearing jobs, the failed store, restarts.

use std::{collections::HashSet, time::Duration};

use sqlx::{MySqlConnection, Row};

use super::{
    MysqlStore, batches, counters,
    retry::{Begin, TxError, idempotent, in_transaction},
    sql::{MAX_OFFSET_MS, ROWS_PER_STATEMENT, list, sql},
    workers::ADMIN_SLOT,
};
use crate::{
    duration::millis,
    store::{RetrySelector, StoreResult},
};

impl MysqlStore {
    pub(super) async fn delete_waiting(&self, id: &str) -> StoreResult<bool> {
        let n = in_transaction!(&self.pool, Begin::Write, |conn| {
            let n = sqlx::query("DELETE FROM spool_jobs WHERE id = ? AND worker_id IS NULL")
                .bind(id)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            if n > 0 {
                // An operator's delete frees the job's unique lock (one held until expiry
                // stays).
                sqlx::query("DELETE FROM spool_locks WHERE owner = ? AND held_until <> 'expiry'")
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok::<_, TxError>(n)
        })?;
        Ok(n > 0)
    }

    pub(super) async fn run_now(&self, id: &str) -> StoreResult<bool> {
        let n = in_transaction!(&self.pool, Begin::Write, |conn| {
            let n = sqlx::query(sql("UPDATE spool_jobs SET available_at = {now}
                 WHERE id = ? AND worker_id IS NULL AND available_at > {now}"))
            .bind(id)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            counters::bump(conn, ADMIN_SLOT, 0, n).await?;
            Ok::<_, TxError>(n)
        })?;
        if n > 0 {
            self.wakeup.notify();
        }
        Ok(n > 0)
    }

    pub(super) async fn clear_queue(&self, queue: &str) -> StoreResult<u64> {
        in_transaction!(&self.pool, Begin::Write, |conn| {
            // Like a delete, clearing frees the unique locks of the jobs (not those held until
            // expiry).
            sqlx::query(
                "DELETE l FROM spool_locks l
                 JOIN spool_jobs j ON j.unique_key = l.name AND j.id = l.owner
                 WHERE j.queue = ? AND j.worker_id IS NULL AND l.held_until <> 'expiry'",
            )
            .bind(queue)
            .execute(&mut *conn)
            .await?;
            let n = sqlx::query("DELETE FROM spool_jobs WHERE queue = ? AND worker_id IS NULL")
                .bind(queue)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            Ok::<_, TxError>(n)
        })
    }

    pub(super) async fn retry(&self, selector: &RetrySelector) -> StoreResult<Vec<String>> {
        let retried = in_transaction!(&self.pool, Begin::Write, |conn| {
            let retried = requeue(conn, selector).await?;
            counters::bump(conn, ADMIN_SLOT, 0, u64::from(!retried.is_empty())).await?;
            Ok::<_, TxError>(retried)
        })?;
        if !retried.is_empty() {
            self.wakeup.notify();
        }
        Ok(retried)
    }

    pub(super) async fn forget(&self, id: &str) -> StoreResult<bool> {
        let n = self
            .delete_failed("DELETE FROM spool_failed WHERE id = ?", Some(id), None)
            .await?;
        Ok(n > 0)
    }

    pub(super) async fn flush(&self) -> StoreResult<u64> {
        self.delete_failed("DELETE FROM spool_failed", None, None)
            .await
    }

    pub(super) async fn prune(&self, age: Duration) -> StoreResult<u64> {
        let age = millis(age).min(MAX_OFFSET_MS);
        self.delete_failed(
            "DELETE FROM spool_failed WHERE failed_at < {now} - ?",
            None,
            Some(age),
        )
        .await
    }

    async fn delete_failed(
        &self,
        statement: &str,
        id: Option<&str>,
        age: Option<i64>,
    ) -> StoreResult<u64> {
        in_transaction!(&self.pool, Begin::Write, |conn| {
            let mut query = sqlx::query(sql(statement));
            if let Some(id) = id {
                query = query.bind(id);
            }
            if let Some(age) = age {
                query = query.bind(age);
            }
            Ok::<_, TxError>(query.execute(conn).await?.rows_affected())
        })
    }

    pub(super) async fn restart(&self) -> StoreResult<i64> {
        // The epoch is the clock's reading, but always at least one past the previous epoch,
        // so it strictly increases even if the clock stands still or steps back.
        in_transaction!(&self.pool, Begin::Write, |conn| {
            sqlx::query(sql(
                "UPDATE spool_meta SET value = GREATEST({now}, value + 1)
                 WHERE name = 'restart_epoch' AND slot = 0",
            ))
            .execute(&mut *conn)
            .await?;
            let epoch: i64 = sqlx::query_scalar(
                "SELECT value FROM spool_meta WHERE name = 'restart_epoch' AND slot = 0",
            )
            .fetch_one(&mut *conn)
            .await?;
            Ok::<_, TxError>(epoch)
        })
    }

    pub(super) async fn epoch(&self) -> StoreResult<i64> {
        let epoch: Option<i64> = idempotent!(&self.pool, |conn| {
            sqlx::query_scalar(
                "SELECT value FROM spool_meta WHERE name = 'restart_epoch' AND slot = 0",
            )
            .fetch_optional(conn)
            .await
        })?;
        Ok(epoch.unwrap_or(0))
    }
}

/// A failed record to put back.
struct Requeued {
    id: String,
    queue: String,
    job: String,
    envelope: String,
    window_ms: Option<i64>,
    batch_id: Option<String>,
}

/// Puts the selected failed jobs back on their queues, oldest failure first, with fresh
/// counters; the retry deadline is recomputed from the envelope's window with the database
/// clock (S-RETRY-4). A failed record whose id is queued again meanwhile stays where it is. A
/// retried batch job is pending in its batch again (see `batches::uncount_retried`).
async fn requeue(
    conn: &mut MySqlConnection,
    selector: &RetrySelector,
) -> Result<Vec<String>, sqlx::Error> {
    let rows = match selector {
        RetrySelector::Batch(batch_id) => {
            sqlx::query(
                "SELECT id, queue, job, envelope, batch_id FROM spool_failed WHERE batch_id = ?
                 ORDER BY failed_at, id FOR UPDATE",
            )
            .bind(batch_id)
            .fetch_all(&mut *conn)
            .await?
        }
        RetrySelector::All { queue } => {
            sqlx::query(
                "SELECT id, queue, job, envelope, batch_id FROM spool_failed
                 WHERE (? IS NULL OR queue = ?)
                 ORDER BY failed_at, id FOR UPDATE",
            )
            .bind(queue)
            .bind(queue)
            .fetch_all(&mut *conn)
            .await?
        }
        RetrySelector::Ids(ids) => {
            let mut rows = Vec::new();
            for chunk in ids.chunks(ROWS_PER_STATEMENT) {
                let statement = format!(
                    "SELECT id, queue, job, envelope, batch_id FROM spool_failed WHERE id IN ({})
                     ORDER BY failed_at, id FOR UPDATE",
                    list(chunk.len())
                );
                let mut query = sqlx::query(sqlx::AssertSqlSafe(statement));
                for id in chunk {
                    query = query.bind(id);
                }
                rows.extend(query.fetch_all(&mut *conn).await?);
            }
            rows
        }
    };
    let mut failed = Vec::with_capacity(rows.len());
    for row in &rows {
        let envelope: String = row.try_get(3)?;
        failed.push(Requeued {
            id: row.try_get(0)?,
            queue: row.try_get(1)?,
            job: row.try_get(2)?,
            batch_id: row.try_get(4)?,
            window_ms: retry_window_ms(&envelope),
            envelope,
        });
    }
    let ids: Vec<&str> = failed.iter().map(|f| f.id.as_str()).collect();
    let mut queued = HashSet::new();
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let statement = format!(
            "SELECT id FROM spool_jobs WHERE id IN ({})",
            list(chunk.len())
        );
        let mut query = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(statement));
        for id in chunk {
            query = query.bind(*id);
        }
        queued.extend(query.fetch_all(&mut *conn).await?);
    }
    let back: Vec<&Requeued> = failed.iter().filter(|f| !queued.contains(&f.id)).collect();
    for chunk in back.chunks(ROWS_PER_STATEMENT) {
        let row = "(?, ?, ?, ?, {now}, {now} + LEAST(?, ?), {now}, ?)";
        let statement = format!(
            "INSERT INTO spool_jobs (id, queue, job, envelope, available_at, retry_until, created_at,
                                     batch_id)
             VALUES {}",
            vec![row; chunk.len()].join(", ")
        );
        let mut insert = sqlx::query(sql(&statement));
        let mut forget = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM spool_failed WHERE id IN ({})",
            list(chunk.len())
        )));
        for f in chunk {
            insert = insert
                .bind(&f.id)
                .bind(&f.queue)
                .bind(&f.job)
                .bind(&f.envelope)
                .bind(f.window_ms)
                .bind(MAX_OFFSET_MS)
                .bind(&f.batch_id);
            forget = forget.bind(&f.id);
        }
        insert.execute(&mut *conn).await?;
        forget.execute(&mut *conn).await?;
    }
    let in_batches: Vec<(&str, &str)> = back
        .iter()
        .filter_map(|f| Some((f.id.as_str(), f.batch_id.as_deref()?)))
        .collect();
    batches::uncount_retried(conn, &in_batches).await?;
    Ok(back.into_iter().map(|f| f.id.clone()).collect())
}

/// The retry window frozen into an envelope (`options.retry_for_ms`), if any. Envelopes are
/// stored as pushed and may be malformed (the worker reports that when it runs the job), so a
/// bad one just has no window.
fn retry_window_ms(envelope: &str) -> Option<i64> {
    let value: serde_json::Value = serde_json::from_str(envelope).ok()?;
    let window = value.get("options")?.get("retry_for_ms")?;
    window
        .as_i64()
        .or_else(|| window.as_str().and_then(|s| s.parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_windows_come_from_well_formed_envelopes() {
        assert_eq!(
            retry_window_ms(r#"{"options":{"retry_for_ms":60000}}"#),
            Some(60000)
        );
        assert_eq!(retry_window_ms(r#"{"options":{}}"#), None);
        assert_eq!(retry_window_ms("not json {"), None);
    }
}
