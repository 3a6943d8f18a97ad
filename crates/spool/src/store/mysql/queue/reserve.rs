//! Claiming: up to N ready jobs of a queue, locked with `FOR UPDATE SKIP LOCKED` and handed to
//! a worker with a new fencing token, inside the caller's transaction.
//!
//! The candidates are read in claim order straight off the `jobs_ready` index (one range:
//! this queue, no holder, available by now), so the cost does not grow with the backlog, and
//! rows other workers are claiming are skipped instead of waited for. The session runs at READ
//! COMMITTED, where InnoDB locks only the rows it returns, never the gaps between them, so
//! concurrent claims and pushes do not block each other. MySQL has no `UPDATE ... RETURNING`:
//! the rows come from the locking read, and the update's effect on them (token and attempts
//! + 1, reserved now) is applied to the decoded values, which the lock keeps exact.

use sqlx::{MySqlConnection, Row};

use crate::store::mysql::{list, sql_with, workflow};
use crate::store::{ReservedJob, sql::rows};

/// Reserves on `conn` (inside the caller's transaction) up to `limit` jobs, queue by queue.
pub(super) async fn claim(
    conn: &mut MySqlConnection,
    worker_id: &str,
    queues: &[String],
    limit: usize,
) -> Result<Vec<ReservedJob>, sqlx::Error> {
    let mut out = Vec::new();
    for queue in queues {
        let want = limit.saturating_sub(out.len());
        if want == 0 {
            break;
        }
        out.extend(claim_from(conn, worker_id, queue, want).await?);
    }
    Ok(out)
}

async fn claim_from(
    conn: &mut MySqlConnection,
    worker_id: &str,
    queue: &str,
    limit: usize,
) -> Result<Vec<ReservedJob>, sqlx::Error> {
    let found = sqlx::query(sql_with(
        include_str!("../sql/reserve.sql"),
        &[("columns", &claim_columns())],
    ))
    .bind(queue)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(&mut *conn)
    .await?;
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let mut picked = Vec::with_capacity(found.len());
    let mut locked = Vec::new();
    for row in &found {
        let (mut job, seq) = rows::reserved(row)?;
        job.token += 1;
        job.attempts = job.attempts.saturating_add(1);
        if let Some(key) = row.try_get::<Option<String>, _>(UNIQUE_KEY_COLUMN)? {
            locked.push((key, job.id.clone()));
        }
        picked.push((job, seq));
    }
    // One clock reading for the whole claim (`NOW(3)` is fixed within the statement).
    let now = picked[0].0.reserved_at;
    let mut update = sqlx::query(sql_with(
        include_str!("../sql/reserve_claim.sql"),
        &[("seqs", &list(picked.len()))],
    ))
    .bind(worker_id)
    .bind(now);
    for (_, seq) in &picked {
        update = update.bind(*seq);
    }
    update.execute(&mut *conn).await?;
    // "Unique until processing" locks are released with the claim: a duplicate may queue while
    // the job runs. Only jobs that own a lock are named, so claims of plain jobs run no
    // statement for it.
    let locked: Vec<(&str, &str)> = locked
        .iter()
        .map(|(key, owner)| (key.as_str(), owner.as_str()))
        .collect();
    workflow::job_state::release_locks(conn, &locked, "processing").await?;
    Ok(rows::in_claim_order(picked))
}

/// Where `sql/reserve.sql` puts the job's unique key, after [`claim_columns`].
const UNIQUE_KEY_COLUMN: usize = 13;

/// [`rows::RESERVED_COLUMNS`] with the clock in place of `reserved_at`: the rows are read
/// before the update that reserves them, and decode as they will be once it has run. The
/// statement puts the job's unique key after them, so that "until processing" locks are
/// released with the claim.
fn claim_columns() -> String {
    rows::RESERVED_COLUMNS.replace("reserved_at,", "{now} AS reserved_at,")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_claim_reads_the_clock_as_reserved_at() {
        let columns = super::claim_columns();
        assert_eq!(columns.matches("{now} AS reserved_at").count(), 1);
        let select = include_str!("../sql/reserve.sql").replace("{columns}", &columns);
        let select = select.lines().next().unwrap_or("");
        assert_eq!(
            select.split(',').position(|c| c.trim() == "unique_key"),
            Some(super::UNIQUE_KEY_COLUMN)
        );
    }
}
