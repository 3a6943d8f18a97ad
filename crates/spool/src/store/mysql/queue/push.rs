//! Pushing: multi-row inserts in push order, existing ids reported and left alone, unique
//! locks taken in the same transaction.

use crate::store::rules::offset_ms;
use std::collections::{BTreeSet, HashSet};

use sqlx::{MySqlConnection, Row};

use crate::store::mysql::{
    MysqlStore, ROWS_PER_STATEMENT, in_list, list, sql_with, tuples, values,
};
use crate::store::{NewJob, PushOutcome, StoreResult, sql::outcomes::push_outcomes};

/// Envelope bytes per insert statement, well under the servers' default packet limits
/// (16 MiB on MariaDB, 64 MiB on MySQL).
const BYTES_PER_STATEMENT: usize = 4 << 20;

impl MysqlStore {
    /// Pushes jobs inside the caller's own transaction on the store's database: they exist if
    /// and only if it commits, unique locks included (Spool's tables are prefixed `spool_`, so
    /// they live beside the app's own). Idle workers notice the commit at their next poll.
    ///
    /// ```no_run
    /// # async fn demo(store: &spool::store::mysql::MysqlStore, pool: sqlx::MySqlPool,
    /// #               job: spool::store::NewJob) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut tx = pool.begin().await?;
    /// sqlx::query("UPDATE invoices SET state = 'sent' WHERE id = 42").execute(&mut *tx).await?;
    /// store.push_in_transaction(&mut tx, &[job]).await?;
    /// tx.commit().await?; // the job exists from here on
    /// # Ok(()) }
    /// ```
    pub async fn push_in_transaction(
        &self,
        conn: &mut MySqlConnection,
        jobs: &[NewJob],
    ) -> StoreResult<Vec<PushOutcome>> {
        crate::store::check_jobs(jobs)?;
        Ok(push_in(conn, jobs, None).await?)
    }
}

/// Pushes jobs on `conn`, inside the caller's transaction, so a push is all or nothing and
/// rides with whatever else the transaction does (a settlement's follow-ups, a batch's
/// callbacks). With `batch`, every job is stored in that batch whatever its envelope says.
///
/// There is no INSERT ... RETURNING on MySQL, and INSERT IGNORE would also hide real errors (a
/// too-long id is truncated with a warning), so the ids already present are looked up first.
/// A concurrent push of the same id (or the same new unique key) makes an insert fail with a
/// duplicate key; the transaction then runs again and finds it.
pub(in crate::store::mysql) async fn push_in(
    conn: &mut MySqlConnection,
    jobs: &[NewJob],
    batch: Option<&str>,
) -> Result<Vec<PushOutcome>, sqlx::Error> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
    let existing = existing_ids(conn, &ids).await?;
    let mut seen = HashSet::new();
    let mut fresh: Vec<&NewJob> = jobs
        .iter()
        .filter(|j| !existing.contains(j.id.as_str()) && seen.insert(j.id.as_str()))
        .collect();
    // Plain jobs skip this: no statement about locks unless a job asks for one.
    if fresh.iter().any(|j| j.unique.is_some()) {
        fresh = take_locks(conn, fresh).await?;
    }
    for chunk in chunks(&fresh) {
        insert(conn, chunk, batch).await?;
    }
    let tags: Vec<(&str, &str)> = fresh
        .iter()
        .flat_map(|j| j.tags.iter().map(|t| (t.as_str(), j.id.as_str())))
        .collect();
    tag_jobs(conn, &tags).await?;
    // The enqueued counts ride with the push, in its transaction.
    let pushed = fresh.iter().map(|j| (j.queue.as_str(), j.job.as_str()));
    let counts = crate::metrics::enqueued(crate::now_ms(), pushed);
    crate::store::mysql::metrics::add(conn, &counts).await?;
    let inserted: Vec<String> = fresh.iter().map(|j| j.id.clone()).collect();
    Ok(push_outcomes(&ids, &inserted))
}

/// Takes the unique locks `jobs` ask for and returns the jobs that may be stored: those
/// without a lock, and the first job of each key whose lock is free (never taken, or
/// expired). A job whose key is held is left out (reported as already queued).
async fn take_locks<'a>(
    conn: &mut MySqlConnection,
    jobs: Vec<&'a NewJob>,
) -> Result<Vec<&'a NewJob>, sqlx::Error> {
    let keys: Vec<&str> = jobs
        .iter()
        .filter_map(|j| j.unique.as_ref().map(|u| u.key.as_str()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut held = HashSet::new();
    for chunk in keys.chunks(ROWS_PER_STATEMENT) {
        // An expired lock is free: drop it, so the key can be taken below.
        let keys = list(chunk.len());
        let mut expired = sqlx::query(sql_with(
            include_str!("../sql/push_expired_locks.sql"),
            &[("keys", &keys)],
        ));
        for key in chunk {
            expired = expired.bind(*key);
        }
        expired.execute(&mut *conn).await?;
        let mut live = sqlx::query_scalar::<_, String>(sql_with(
            include_str!("../sql/push_held_locks.sql"),
            &[("keys", &keys)],
        ));
        for key in chunk {
            live = live.bind(*key);
        }
        held.extend(live.fetch_all(&mut *conn).await?);
    }
    let mut taken = HashSet::new();
    let allowed: Vec<&NewJob> = jobs
        .into_iter()
        .filter(|j| match &j.unique {
            None => true,
            Some(u) => !held.contains(&u.key) && taken.insert(u.key.as_str()),
        })
        .collect();
    let locking: Vec<&NewJob> = allowed
        .iter()
        .copied()
        .filter(|j| j.unique.is_some())
        .collect();
    for chunk in locking.chunks(ROWS_PER_STATEMENT) {
        let mut query = sqlx::query(values(
            include_str!("../sql/push_take_locks.sql"),
            chunk.len(),
        ));
        for job in chunk {
            let unique = job.unique.as_ref().expect("only jobs with a lock");
            query = query
                .bind(&unique.key)
                .bind(&job.id)
                .bind(unique.until.as_str())
                .bind(unique.ttl.map(offset_ms));
        }
        query.execute(&mut *conn).await?;
    }
    Ok(allowed)
}

/// The ids of `ids` that name a job already (queued or running); shared with `retry_failed`.
pub(in crate::store::mysql) async fn existing_ids(
    conn: &mut MySqlConnection,
    ids: &[&str],
) -> Result<HashSet<String>, sqlx::Error> {
    let mut existing = HashSet::new();
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let query = in_list(
            include_str!("../sql/existing_ids.sql"),
            "ids",
            chunk.iter().copied(),
        );
        for row in query.fetch_all(&mut *conn).await? {
            existing.insert(row.try_get::<String, _>(0)?);
        }
    }
    Ok(existing)
}

/// Indexes queued jobs under their tags: `(tag, job id)` pairs (none for untagged jobs, and
/// then no statement). Shared with `retry_failed`.
pub(in crate::store::mysql) async fn tag_jobs(
    conn: &mut MySqlConnection,
    tags: &[(&str, &str)],
) -> Result<(), sqlx::Error> {
    for chunk in tags.chunks(ROWS_PER_STATEMENT) {
        let statement = sql_with(
            include_str!("../sql/tag_jobs.sql"),
            &[("rows", &tuples(chunk.len(), 2))],
        );
        let mut query = sqlx::query(statement);
        for (tag, id) in chunk {
            query = query.bind(*tag).bind(*id);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Drops jobs that leave the queue from the tag index (no statement for none). Shared with the
/// settlements and the reaper.
pub(in crate::store::mysql) async fn untag_jobs(
    conn: &mut MySqlConnection,
    ids: &[&str],
) -> Result<(), sqlx::Error> {
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        in_list(
            include_str!("../sql/untag_jobs.sql"),
            "ids",
            chunk.iter().copied(),
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// One multi-row insert; `{now}` is read once per statement, so the batch shares one instant.
async fn insert(
    conn: &mut MySqlConnection,
    jobs: &[&NewJob],
    batch: Option<&str>,
) -> Result<(), sqlx::Error> {
    let mut query = sqlx::query(values(include_str!("../sql/push.sql"), jobs.len()));
    for job in jobs {
        query = query
            .bind(&job.id)
            .bind(&job.queue)
            .bind(&job.job)
            .bind(&job.envelope)
            .bind(offset_ms(job.delay))
            .bind(job.retry_for.map(offset_ms))
            .bind(batch.or(job.batch_id.as_deref()))
            .bind(job.unique.as_ref().map(|u| u.key.as_str()))
            .bind(job.tags_column());
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

    fn new_job(queue: &str, delay: Duration) -> NewJob {
        let envelope = crate::Envelope::new("noop", queue, serde_json::json!({}));
        NewJob::new(&envelope, delay).expect("encodes")
    }

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
