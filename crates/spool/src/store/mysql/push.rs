//! Pushing: multi-row inserts in push order, existing ids reported and left alone.

use std::collections::HashSet;

use sqlx::{MySqlConnection, Row};

use super::{
    MysqlStore,
    retry::{Begin, TxError, in_transaction},
    sql::{MAX_OFFSET_MS, ROWS_PER_STATEMENT, list, sql},
};
use crate::{
    duration::millis,
    store::{NewJob, PushOutcome, StoreResult, sql::outcomes::push_outcomes},
};

/// Envelope bytes per insert statement, well under the servers' default packet limits
/// (16 MiB on MariaDB, 64 MiB on MySQL).
const BYTES_PER_STATEMENT: usize = 4 << 20;

impl MysqlStore {
    pub(super) async fn push_jobs(&self, jobs: &[NewJob]) -> StoreResult<Vec<PushOutcome>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
        // One transaction, so a push is all or nothing. There is no INSERT ... RETURNING on
        // MySQL, and INSERT IGNORE would also hide real errors (a too-long id is truncated
        // with a warning), so the ids already present are looked up first. A concurrent push
        // of the same id makes the insert fail with a duplicate key; the transaction then
        // runs again and finds it.
        let inserted = in_transaction!(&self.pool, Begin::Write, |conn| {
            let existing = existing_ids(conn, &ids).await?;
            let mut seen = HashSet::new();
            let fresh: Vec<&NewJob> = jobs
                .iter()
                .filter(|j| !existing.contains(j.id.as_str()) && seen.insert(j.id.as_str()))
                .collect();
            for chunk in chunks(&fresh) {
                insert(conn, chunk).await?;
            }
            Ok::<_, TxError>(fresh.iter().map(|j| j.id.clone()).collect::<Vec<_>>())
        })?;
        if !inserted.is_empty() {
            self.wakeup.notify();
        }
        Ok(push_outcomes(&ids, &inserted))
    }
}

async fn existing_ids(
    conn: &mut MySqlConnection,
    ids: &[&str],
) -> Result<HashSet<String>, sqlx::Error> {
    let mut existing = HashSet::new();
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let statement = format!(
            "SELECT id FROM spool_jobs WHERE id IN ({})",
            list(chunk.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(statement));
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut *conn).await? {
            existing.insert(row.try_get::<String, _>(0)?);
        }
    }
    Ok(existing)
}

/// One multi-row insert; `{now}` is read once per statement, so the batch shares one instant.
async fn insert(conn: &mut MySqlConnection, jobs: &[&NewJob]) -> Result<(), sqlx::Error> {
    let row = "(?, ?, ?, ?, {now} + ?, {now} + ?, {now})";
    let statement = format!(
        "INSERT INTO spool_jobs (id, queue, job, envelope, available_at, retry_until, created_at)
         VALUES {}",
        vec![row; jobs.len()].join(", ")
    );
    let mut query = sqlx::query(sql(&statement));
    for job in jobs {
        query = query
            .bind(&job.id)
            .bind(&job.queue)
            .bind(&job.job)
            .bind(&job.envelope)
            .bind(millis(job.delay).min(MAX_OFFSET_MS))
            .bind(job.retry_for.map(|w| millis(w).min(MAX_OFFSET_MS)));
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

/// Splits jobs into statements of at most [`ROWS_PER_STATEMENT`] rows and about
/// [`BYTES_PER_STATEMENT`] envelope bytes (a single larger job gets a statement of its own).
fn chunks<'a>(jobs: &'a [&'a NewJob]) -> impl Iterator<Item = &'a [&'a NewJob]> {
    let mut rest = jobs;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = 0;
        let mut n = 0;
        for job in rest.iter().take(ROWS_PER_STATEMENT) {
            bytes += job.envelope.len();
            if n > 0 && bytes > BYTES_PER_STATEMENT {
                break;
            }
            n += 1;
        }
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        Some(chunk)
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::conformance::new_job;

    #[test]
    fn big_batches_are_split_by_rows_and_bytes() {
        let jobs: Vec<NewJob> = (0..1200)
            .map(|_| new_job("default", Duration::ZERO))
            .collect();
        let refs: Vec<&NewJob> = jobs.iter().collect();
        let sizes: Vec<usize> = chunks(&refs).map(<[_]>::len).collect();
        assert_eq!(sizes, [500, 500, 200]);

        let mut big = jobs[..3].to_vec();
        for job in &mut big {
            job.envelope = "x".repeat(BYTES_PER_STATEMENT - 10);
        }
        let refs: Vec<&NewJob> = big.iter().collect();
        let sizes: Vec<usize> = chunks(&refs).map(<[_]>::len).collect();
        assert_eq!(sizes, [1, 1, 1]);
    }
}
