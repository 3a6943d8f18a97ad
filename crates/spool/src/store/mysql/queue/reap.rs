//! Reaping: the jobs of workers whose lease expired are put back, or failed as poison pills
//! once they have been lost too often, inside the caller's transaction.

use crate::store::rules::is_poison_pill;
use sqlx::{MySqlConnection, Row};

use super::settle;
use crate::store::ReapReport;
use crate::store::mysql::{
    ADMIN_SLOT, ROWS_PER_STATEMENT, bump_counters, in_list,
    retry::TxError,
    sql,
    workflow::{
        batches::{self, Ended},
        job_state,
    },
};

/// A reserved job whose worker's lease is gone.
#[derive(sqlx::FromRow)]
struct Lost {
    seq: i64,
    worker_id: String,
    token: i64,
    recoveries: i64,
    id: String,
    batch_id: Option<String>,
    unique_key: Option<String>,
    queue: String,
    job: String,
    tagged: bool,
}

/// Reaps on `conn`, inside the caller's transaction; returns the report and how many batch
/// callbacks were pushed.
pub(super) async fn reap_in(
    conn: &mut MySqlConnection,
    max_recoveries: u32,
) -> Result<(ReapReport, u64), TxError> {
    // A plain read first (no locks), through the holder index: the candidates.
    let lost: Vec<Lost> = sqlx::query_as(sql(include_str!("../sql/reap.sql")))
        .fetch_all(&mut *conn)
        .await?;
    // Then lock them by primary key in ascending order and keep those still held under the
    // same worker and token: a late settle by the holder wins, and the fence drops the rest.
    let mut still_lost = Vec::with_capacity(lost.len());
    for chunk in lost.chunks(ROWS_PER_STATEMENT) {
        let query = in_list(
            include_str!("../sql/reap_lock.sql"),
            "seqs",
            chunk.iter().map(|job| job.seq),
        );
        let locked = query.fetch_all(&mut *conn).await?;
        for row in &locked {
            let seq: i64 = row.try_get(0)?;
            let worker: Option<String> = row.try_get(1)?;
            let token: i64 = row.try_get(2)?;
            let same_holder = |job: &&Lost| {
                job.seq == seq
                    && worker.as_deref() == Some(job.worker_id.as_str())
                    && token == job.token
            };
            still_lost.extend(chunk.iter().find(same_holder));
        }
    }
    // The poison-pill count, a rule every store shares: a job lost for the `max_recoveries`th
    // time fails instead of running again. It is decided here, in Rust, on the rows this
    // transaction has just locked: the report and the poisoned jobs' batches and locks need
    // those rows anyway, and MySQL has no RETURNING to get them from the statements that
    // change them.
    let (poisoned, recovered): (Vec<&Lost>, Vec<&Lost>) = still_lost
        .into_iter()
        .partition(|job| is_poison_pill(job.recoveries, max_recoveries));
    for chunk in poisoned.chunks(ROWS_PER_STATEMENT) {
        on_jobs(conn, include_str!("../sql/reap_poison.sql"), chunk).await?;
        let seqs: Vec<i64> = chunk.iter().map(|job| job.seq).collect();
        settle::delete(conn, &seqs).await?;
    }
    // Poison pills fail like any final failure: their "until done" locks are released and they
    // count as failures in their batches.
    let locks: Vec<(&str, &str)> = poisoned
        .iter()
        .filter_map(|job| Some((job.unique_key.as_deref()?, job.id.as_str())))
        .collect();
    job_state::release_locks(conn, &locks, "done").await?;
    let tagged: Vec<&str> = poisoned
        .iter()
        .filter(|job| job.tagged)
        .map(|job| job.id.as_str())
        .collect();
    super::untag_jobs(conn, &tagged).await?;
    let ended: Vec<Ended> = poisoned
        .iter()
        .filter_map(|job| {
            Some(Ended {
                batch_id: job.batch_id.clone()?,
                job_id: job.id.clone(),
                failed: true,
            })
        })
        .collect();
    let pushed = batches::count_in_batches(conn, &ended).await?;
    // The slots of dead workers are freed below, all at once.
    for chunk in recovered.chunks(ROWS_PER_STATEMENT) {
        on_jobs(conn, include_str!("../sql/reap_recover.sql"), chunk).await?;
    }
    let names = recovered.iter().map(|j| (j.queue.as_str(), j.job.as_str()));
    let rescued = crate::metrics::rescued(crate::now_ms(), names);
    crate::store::mysql::metrics::add(conn, &rescued).await?;
    let removed = sqlx::query(sql(include_str!("../sql/reap_workers.sql")))
        .execute(&mut *conn)
        .await?
        .rows_affected();
    job_state::reap_workflow_state(conn).await?;
    bump_counters(conn, ADMIN_SLOT, 0, u64::from(!recovered.is_empty())).await?;
    let report = ReapReport {
        recovered: recovered.len() as u64,
        failed: poisoned.len() as u64,
        workers_removed: removed,
    };
    Ok((report, pushed))
}

/// Runs `template` on `jobs`, named by `seq` in its `{seqs}` list.
async fn on_jobs(
    conn: &mut MySqlConnection,
    template: &str,
    jobs: &[&Lost],
) -> Result<(), sqlx::Error> {
    in_list(template, "seqs", jobs.iter().map(|job| job.seq))
        .execute(conn)
        .await?;
    Ok(())
}
