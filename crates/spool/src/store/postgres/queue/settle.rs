//! Settlements on PostgreSQL and their side effects: locks and slots released, results kept,
//! batches counted (and their callbacks pushed), follow-ups pushed. A whole batch of
//! settlements is settled with one statement per kind, its items passed as JSON arrays
//! (`json_to_recordset`).

use crate::store::rules::{MAX_OFFSET_MS, offset_ms};
use serde::Serialize;
use sqlx::{PgConnection, Row};

use super::super::PostgresStore;

use crate::store::{
    NewJob, PushOutcome, ReservedJob, Settlement, StoreResult, hands_on_batch_membership, sql::rows,
};

impl PostgresStore {
    /// Settles inside the caller's transaction, with every side effect of the settled jobs:
    /// locks and slots released, batches counted (and their callbacks pushed), results kept,
    /// follow-ups pushed. Returns the applied flags and whether jobs became available (a
    /// notification is then queued in the transaction).
    pub(super) async fn settle_in(
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
            let done = self
                .settle_kind(
                    conn,
                    include_str!("../sql/settle_complete.sql"),
                    json,
                    worker_id,
                )
                .await?;
            for (id, token, batch_id) in done {
                // A chain link in a batch hands its membership to its next link: the rule is
                // the shared one, applied here in Rust because the statement above only
                // reports which completions applied; their follow-ups are the caller's.
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
                                && hands_on_batch_membership(batch_id, follow_ups)
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
            let released: Vec<(String, i64)> = self
                .query_as(include_str!("../sql/settle_release.sql"))
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
            let failed = self
                .settle_kind(
                    conn,
                    include_str!("../sql/settle_fail.sql"),
                    json,
                    worker_id,
                )
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
        let follow_ups = applied_follow_ups(settlements, &applied);
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

    /// Runs the completing or failing `statement` on the settlements in `json`: the
    /// `(id, token, batch_id)` of each one the fence let through.
    async fn settle_kind(
        &self,
        conn: &mut PgConnection,
        statement: &str,
        json: &str,
        worker_id: &str,
    ) -> sqlx::Result<Vec<(String, i64, Option<String>)>> {
        self.query_as(statement)
            .bind(json)
            .bind(worker_id)
            .fetch_all(&mut *conn)
            .await
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
    pub(super) async fn complete_and_claim(
        &self,
        worker_id: &str,
        settlements: &[Settlement],
        queue: &str,
        limit: usize,
    ) -> StoreResult<Option<(Vec<bool>, Vec<ReservedJob>)>> {
        let batch = SettlementBatch::new(settlements);
        let start = self.cursors.start(queue);
        let mut conn = self.hot_unit().await?;
        let found = self
            .query(include_str!("../sql/settle_and_reserve.sql"))
            .bind(batch.complete.as_deref().unwrap_or("[]"))
            .bind(worker_id)
            .bind(queue)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .bind(start.0)
            .bind(start.1)
            .fetch_all(&mut *conn)
            .await?;
        conn.done().await?;
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
        self.cursors.claimed(queue, start, limit, &claimed);
        Ok(Some((
            applied_in_order(settlements, &done),
            rows::in_claim_order(claimed),
        )))
    }

    /// Counts jobs that ended in their batches and pushes the callbacks that became due, each
    /// at most once: `catch` at the first failure, `finally` when no job is pending, `then`
    /// when no job is pending and none failed. Without `allow_failures` the first failure
    /// cancels the batch. Returns how many callbacks were pushed (the caller notifies).
    ///
    /// The jobs are counted per batch in one statement. That is the same as counting them one
    /// by one: `pending` reaches zero only with the last of them, when every failure among them
    /// is already counted, so the same callbacks come due either way.
    ///
    /// The callback decision is written in the statement, not in Rust: deciding in Rust would
    /// mean reading the locked batch rows back and writing them again, a round trip more on
    /// every settlement of a batch job, for the same rule.
    pub(super) async fn count_in_batches_in(
        &self,
        conn: &mut PgConnection,
        ended: &[Ended],
    ) -> StoreResult<u64> {
        if ended.is_empty() {
            return Ok(0);
        }
        let batch_ids: Vec<&str> = ended.iter().map(|e| e.batch_id.as_str()).collect();
        let job_ids: Vec<&str> = ended.iter().map(|e| e.job_id.as_str()).collect();
        let failed: Vec<bool> = ended.iter().map(|e| e.failed).collect();
        // `before` locks the batch rows in id order (two settlements touching the same batches
        // cannot deadlock) and reads their fired flags as they are under the lock; RETURNING
        // only shows the new flags, so comparing the two tells which callbacks fire now. A
        // pruned batch has no row: its jobs are not counted anywhere.
        let fired: i64 = self
            .query_scalar(include_str!("../sql/batch_job_settled.sql"))
            .bind(&batch_ids)
            .bind(&job_ids)
            .bind(&failed)
            .fetch_one(&mut *conn)
            .await?;
        Ok(u64::try_from(fired).unwrap_or(0))
    }
}

/// A job that ended in a batch (completed or failed for good), to be counted there.
#[derive(Debug)]
pub(super) struct Ended {
    pub(super) batch_id: String,
    pub(super) job_id: String,
    pub(super) failed: bool,
}

/// The follow-ups of the completions and failures that were applied, in input order. Matched on
/// `(id, token)`, so a stale duplicate of an applied settlement pushes nothing.
fn applied_follow_ups(settlements: &[Settlement], applied: &[(String, i64)]) -> Vec<NewJob> {
    let applied: std::collections::HashSet<(&str, i64)> = applied
        .iter()
        .map(|(id, token)| (id.as_str(), *token))
        .collect();
    settlements
        .iter()
        .filter_map(|s| match s {
            Settlement::Complete {
                id,
                token,
                follow_ups,
                ..
            }
            | Settlement::Fail {
                id,
                token,
                follow_ups,
                ..
            } if !follow_ups.is_empty() && applied.contains(&(id.as_str(), *token)) => {
                Some(follow_ups)
            }
            _ => None,
        })
        .flatten()
        .cloned()
        .collect()
}

/// A completion, as `settle_complete.sql` (and `settle_and_reserve.sql`) reads it.
#[derive(Serialize)]
struct Done<'a> {
    id: &'a str,
    token: i64,
    /// The result to keep, if the handler stored one.
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a str>,
}

/// A release back to the queue, as `settle_release.sql` reads it.
#[derive(Serialize)]
struct Released<'a> {
    id: &'a str,
    token: i64,
    delay_ms: i64,
    /// 1 when the attempt is handed back (deferral, shutdown).
    refund: i64,
    deferral: i64,
    exception: i64,
    error: Option<&'a str>,
}

/// A final failure, as `settle_fail.sql` reads it.
#[derive(Serialize)]
struct Failed<'a> {
    id: &'a str,
    token: i64,
    error: &'a str,
    /// The cause chain as a JSON array, stored as text.
    causes: String,
}

/// A batch of settlements split by kind, each kind as a JSON array (`None` when empty).
struct SettlementBatch {
    complete: Option<String>,
    release: Option<String>,
    fail: Option<String>,
}

impl SettlementBatch {
    /// Splits and encodes `settlements`.
    fn new(settlements: &[Settlement]) -> Self {
        let mut done = Vec::new();
        let mut released = Vec::new();
        let mut failed = Vec::new();
        for s in settlements {
            match s {
                Settlement::Complete {
                    id, token, result, ..
                } => done.push(Done {
                    id,
                    token: *token,
                    result: result.as_deref(),
                }),
                Settlement::Release {
                    id,
                    token,
                    delay,
                    kind,
                    error,
                } => {
                    let (refund, deferral, exception) = kind.counter_effects();
                    released.push(Released {
                        id,
                        token: *token,
                        delay_ms: offset_ms(*delay),
                        refund,
                        deferral,
                        exception,
                        error: error.as_deref(),
                    })
                }
                Settlement::Fail {
                    id,
                    token,
                    error,
                    causes,
                    ..
                } => failed.push(Failed {
                    id,
                    token: *token,
                    error,
                    causes: serde_json::to_string(causes).unwrap_or_else(|_| "[]".into()),
                }),
            }
        }
        fn encode<T: Serialize>(items: &[T]) -> Option<String> {
            (!items.is_empty()).then(|| serde_json::to_string(items).expect("plain data encodes"))
        }
        SettlementBatch {
            complete: encode(&done),
            release: encode(&released),
            fail: encode(&failed),
        }
    }
}

/// Maps the ids a store reports as applied back onto the input order.
fn applied_in_order(settlements: &[Settlement], applied: &[String]) -> Vec<bool> {
    let applied: std::collections::HashSet<&str> = applied.iter().map(String::as_str).collect();
    settlements
        .iter()
        .map(|s| applied.contains(s.id()))
        .collect()
}
