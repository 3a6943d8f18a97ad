//! Settling a batch: completions, releases and failures, each fenced on `(worker, token)`,
//! with one statement per kind inside the caller's transaction, and the side effects of the
//! settled jobs in the same transaction (see `workflow/`).
//!
//! MySQL has no `DELETE ... RETURNING`, so telling which settlements applied takes a locking
//! read of the batch's rows first. The worker's usual batch (plain completions only: no
//! follow-ups, no result, each job once) skips it: one fenced `DELETE` that only takes jobs
//! with no workflow state (no batch, no unique lock, no concurrency slot), and if it deleted
//! as many rows as there are completions, all applied and there is nothing else to do. Plain
//! jobs thus cost one statement, as before workflows existed. Otherwise (a stale token, or a
//! job with workflow state) the transaction is rolled back and run again on the general path.

use crate::store::rules::{MAX_OFFSET_MS, offset_ms};
use std::collections::HashMap;

use sqlx::MySqlConnection;

use super::push::push_in;
use crate::store::mysql::{
    ROWS_PER_STATEMENT, in_list, list,
    retry::TxError,
    sql_with, tuples,
    workflow::{
        batches::{self, Ended},
        job_state::{self, KeptResult},
    },
};
use crate::store::{NewJob, PushOutcome, ReleaseKind, Settlement};

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
    /// Jobs pushed with the settlements (follow-ups, batch callbacks): this process's idle
    /// workers should look (other processes see the pushes by polling).
    pub(super) pushed: u64,
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
                pushed: 0,
            });
        }
        *fast = false;
        return Err(TxError::Rerun);
    }
    Ok(settle_each(conn, worker_id, settlements).await?)
}

/// Plain completions only (nothing to push, no result to keep), and no job twice.
fn fast_path_fits(settlements: &[Settlement]) -> bool {
    settlements.len() <= ROWS_PER_STATEMENT
        && settlements.iter().all(|s| {
            matches!(s, Settlement::Complete { follow_ups, result, .. }
                if follow_ups.is_empty() && result.is_none())
        })
        && {
            let mut ids: Vec<&str> = settlements.iter().map(Settlement::id).collect();
            ids.sort_unstable();
            ids.windows(2).all(|w| w[0] != w[1])
        }
}

/// Deletes the completed jobs still held under their tokens and without workflow state;
/// returns how many.
async fn complete_all(
    conn: &mut MySqlConnection,
    worker_id: &str,
    settlements: &[Settlement],
) -> Result<u64, sqlx::Error> {
    // `id IN` makes it a range of the unique index; the pairs are the fence. A job with a
    // batch, a lock or a slot is left alone (it has side effects to apply): the count then
    // falls short and the general path takes over. The row's own columns say so, and InnoDB
    // re-reads a row it waited for before deciding, so a slot taken just before (which marks
    // the row) is seen.
    // Their history records first, from the same rows (MySQL has no DELETE ... RETURNING): a
    // statement more, in the same transaction, which a shortfall rolls back with the rest.
    let parts = [
        ("ids", list(settlements.len())),
        ("pairs", tuples(settlements.len(), 2)),
    ];
    let parts: Vec<(&str, &str)> = parts.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut deleted = 0;
    for template in [
        include_str!("../sql/settle_fast_history.sql"),
        include_str!("../sql/settle_fast.sql"),
    ] {
        let mut query = sqlx::query(sql_with(template, &parts)).bind(worker_id);
        for s in settlements {
            query = query.bind(s.id());
        }
        for s in settlements {
            if let Settlement::Complete { id, token, .. } = s {
                query = query.bind(id).bind(*token);
            }
        }
        deleted = query.execute(&mut *conn).await?.rows_affected();
    }
    Ok(deleted)
}

/// A job the settling worker holds, as locked by [`held_rows`].
#[derive(Debug, sqlx::FromRow)]
struct Held {
    seq: i64,
    token: i64,
    queue: String,
    job: String,
    batch_id: Option<String>,
    unique_key: Option<String>,
    took_slot: bool,
    /// The tags column, comma-joined.
    tags: Option<String>,
}

/// The general path: lock the batch's rows, match tokens, then one statement per kind, and
/// the side effects of the jobs that were settled (each only when some job needs it).
async fn settle_each(
    conn: &mut MySqlConnection,
    worker_id: &str,
    settlements: &[Settlement],
) -> Result<Settled, sqlx::Error> {
    let held = held_rows(conn, worker_id, settlements).await?;
    // Each held row settles at most once: the first settlement presenting its token wins.
    let mut used = std::collections::HashSet::new();
    let matched: Vec<Option<&Held>> = settlements
        .iter()
        .map(|s| {
            let token = match s {
                Settlement::Complete { token, .. }
                | Settlement::Release { token, .. }
                | Settlement::Fail { token, .. } => *token,
            };
            held.get(s.id())
                .filter(|row| row.token == token)
                .filter(|row| used.insert(row.seq))
        })
        .collect();

    let mut completed = Vec::new();
    let mut released = Vec::new();
    let mut failed = Vec::new();
    let mut effects = Effects::default();
    for (s, row) in settlements.iter().zip(&matched) {
        let Some(row) = *row else { continue };
        if row.took_slot {
            effects.slot_holders.push(s.id());
        }
        match s {
            Settlement::Complete {
                id,
                result,
                follow_ups,
                ..
            } => {
                completed.push(row.seq);
                // A chain link in a batch hands its membership to its next link (the rule
                // every store shares, written once in `store/types.rs`).
                let passes_on = row
                    .batch_id
                    .as_deref()
                    .is_some_and(|b| crate::store::hands_on_batch_membership(b, follow_ups));
                effects.ended(id, row, false, passes_on);
                if let Some(result) = result {
                    effects.results.push(KeptResult {
                        id,
                        queue: &row.queue,
                        job: &row.job,
                        batch_id: row.batch_id.as_deref(),
                        result,
                    });
                }
                effects.follow_ups.extend(follow_ups.iter().cloned());
            }
            Settlement::Release {
                delay, kind, error, ..
            } => released.push((row.seq, offset_ms(*delay), *kind, error.as_deref())),
            Settlement::Fail {
                id,
                error,
                causes,
                follow_ups,
                ..
            } => {
                failed.push((
                    row.seq,
                    error.as_str(),
                    serde_json::to_string(causes).unwrap_or_else(|_| "[]".into()),
                ));
                effects.ended(id, row, true, false);
                effects.follow_ups.extend(follow_ups.iter().cloned());
            }
        }
    }
    for chunk in completed.chunks(ROWS_PER_STATEMENT) {
        // Every completed job's history record, from its row, before the row goes.
        in_list(
            include_str!("../sql/keep_completed.sql"),
            "seqs",
            chunk.iter().copied(),
        )
        .execute(&mut *conn)
        .await?;
        delete(conn, chunk).await?;
    }
    for chunk in released.chunks(ROWS_PER_STATEMENT) {
        release(conn, chunk).await?;
    }
    for chunk in failed.chunks(ROWS_PER_STATEMENT) {
        fail(conn, chunk).await?;
    }
    let pushed = effects.apply(conn).await?;
    Ok(Settled {
        applied: matched.iter().map(Option::is_some).collect(),
        completed: completed.len() as u64,
        released: released.len() as u64,
        pushed,
    })
}

/// The side effects of the jobs a general-path settle applied, collected while matching and
/// applied after the jobs' own rows changed.
#[derive(Default)]
struct Effects<'a> {
    /// `(key, owner)` of the "until done" locks to release: completed and failed jobs.
    locks: Vec<(&'a str, &'a str)>,
    /// Jobs that took a concurrency slot (any settlement frees them).
    slot_holders: Vec<&'a str>,
    /// Completions with a result to keep.
    results: Vec<KeptResult<'a>>,
    /// Completed and failed jobs of batches.
    ended: Vec<Ended>,
    /// Follow-ups of the applied completions and failures, in input order.
    follow_ups: Vec<NewJob>,
    /// Tagged jobs that ended: they leave the tag index.
    untagged: Vec<&'a str>,
    /// `(tag, id)` of the tagged jobs that completed, for the history's tag index.
    completed_tags: Vec<(&'a str, &'a str)>,
}

impl<'a> Effects<'a> {
    /// Notes a job that ended (completed, or failed for good); `passes_on`: it is a chain link
    /// whose next link carries its batch membership, so the batch does not count it.
    fn ended(&mut self, id: &'a str, row: &'a Held, failed: bool, passes_on: bool) {
        if let Some(key) = &row.unique_key {
            self.locks.push((key, id));
        }
        if let Some(tags) = row.tags.as_deref().filter(|t| !t.is_empty()) {
            self.untagged.push(id);
            if !failed {
                self.completed_tags
                    .extend(tags.split(',').map(|tag| (tag, id)));
            }
        }
        if let Some(batch_id) = row.batch_id.as_ref().filter(|_| !passes_on) {
            self.ended.push(Ended {
                batch_id: batch_id.clone(),
                job_id: id.to_string(),
                failed,
            });
        }
    }

    /// Applies them, each kind with one statement per chunk and only if present; returns how
    /// many jobs were pushed.
    async fn apply(self, conn: &mut MySqlConnection) -> Result<u64, sqlx::Error> {
        job_state::release_locks(conn, &self.locks, "done").await?;
        job_state::free_slots(conn, &self.slot_holders).await?;
        job_state::keep_results(conn, &self.results).await?;
        super::untag_jobs(conn, &self.untagged).await?;
        job_state::tag_completed(conn, &self.completed_tags).await?;
        let fired = batches::count_in_batches(conn, &self.ended).await?;
        let pushed = push_in(conn, &self.follow_ups, None)
            .await?
            .iter()
            .filter(|o| **o == PushOutcome::Queued)
            .count() as u64;
        Ok(fired + pushed)
    }
}

/// One row of `settle_held.sql`: the job's id, then what settling it needs.
#[derive(sqlx::FromRow)]
struct HeldRow {
    id: String,
    #[sqlx(flatten)]
    held: Held,
}

/// The batch's jobs that `worker_id` holds, locked: id → what settling them needs.
async fn held_rows(
    conn: &mut MySqlConnection,
    worker_id: &str,
    settlements: &[Settlement],
) -> Result<HashMap<String, Held>, sqlx::Error> {
    let mut ids: Vec<&str> = settlements.iter().map(Settlement::id).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut held = HashMap::new();
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let statement = sql_with(
            include_str!("../sql/settle_held.sql"),
            &[("ids", &list(chunk.len()))],
        );
        let mut query = sqlx::query_as::<_, HeldRow>(statement).bind(worker_id);
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut *conn).await? {
            held.insert(row.id, row.held);
        }
    }
    Ok(held)
}

/// Deletes jobs by `seq`: completed ones, and failed ones once recorded. Shared with `reap`.
pub(super) async fn delete(conn: &mut MySqlConnection, seqs: &[i64]) -> Result<(), sqlx::Error> {
    let statement = sql_with(
        include_str!("../sql/delete_jobs.sql"),
        &[("seqs", &list(seqs.len()))],
    );
    let mut query = sqlx::query(statement);
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
    // The file holds the first row of the derived table; the others follow it.
    let more = " UNION ALL SELECT ?, ?, ?, ?, ?, CAST(? AS CHAR)";
    let statement = sql_with(
        include_str!("../sql/settle_release.sql"),
        &[
            ("more", &more.repeat(jobs.len() - 1)),
            ("max_offset_ms", &MAX_OFFSET_MS.to_string()),
        ],
    );
    let mut query = sqlx::query(statement);
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
/// attempts, batch), then the row is deleted; both under the lock taken by [`held_rows`].
async fn fail(conn: &mut MySqlConnection, jobs: &[(i64, &str, String)]) -> Result<(), sqlx::Error> {
    // REPLACE: a record left from an earlier failure of the same id is overwritten. The file
    // holds the first row of the derived table; the others follow it.
    let more = " UNION ALL SELECT ?, CAST(? AS CHAR), CAST(? AS CHAR)";
    let statement = sql_with(
        include_str!("../sql/settle_fail.sql"),
        &[("more", &more.repeat(jobs.len() - 1))],
    );
    let mut query = sqlx::query(statement);
    for (seq, error, causes) in jobs {
        query = query.bind(*seq).bind(*error).bind(causes);
    }
    query.execute(&mut *conn).await?;
    let seqs: Vec<i64> = jobs.iter().map(|(seq, ..)| *seq).collect();
    delete(conn, &seqs).await
}
