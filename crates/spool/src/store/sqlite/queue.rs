//! The queue core on SQLite: push, reserve, settle, the worker lease and the reaper.
//!
//! The worker's hot path ([`QueueStore::settle_and_reserve`]) is one closure on the writer
//! thread and one `BEGIN IMMEDIATE` transaction: each settlement is one fenced statement, then
//! one claiming `UPDATE ... RETURNING` per queue.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, migrate, rows, workflow};
use crate::{
    envelope::now_ms,
    store::{
        Claim, Heartbeat, NewJob, PushOutcome, QueueStore, ReapReport, ReservedJob, Settlement,
        Store, StoreResult, Wakeups, WorkerInfo,
        rules::{self, is_poison_pill, offset_ms},
    },
};

#[async_trait]
impl QueueStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> StoreResult<()> {
        self.write(migrate::migrate).await
    }

    async fn check_schema(&self) -> StoreResult<()> {
        let location = crate::redact::redact_url(&self.url);
        self.read(move |conn| migrate::check(conn, &location)).await
    }

    async fn reopen(&self) -> StoreResult<Arc<dyn Store>> {
        Ok(Arc::new(SqliteStore::open_as(&self.url, self.mode).await?))
    }

    async fn push(&self, jobs: &[NewJob]) -> StoreResult<Vec<PushOutcome>> {
        crate::store::check_jobs(jobs)?;
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let jobs = jobs.to_vec();
        let outcomes = self
            .write(move |conn| push_in(conn, &jobs, now_ms()))
            .await?;
        self.wakeup.notify();
        Ok(outcomes)
    }

    async fn register_worker(&self, worker: &WorkerInfo, lease: Duration) -> StoreResult<()> {
        let worker = worker.clone();
        self.write_one(move |conn| insert_worker(conn, &worker, now_ms(), lease))
            .await
    }

    async fn register_worker_within(
        &self,
        worker: &WorkerInfo,
        lease: Duration,
        max: u32,
    ) -> StoreResult<bool> {
        let worker = worker.clone();
        // One write transaction: the database's one writer makes the check and the insert
        // atomic.
        self.write(move |conn| {
            let now = now_ms();
            let lists: Vec<String> = conn
                .prepare_cached(include_str!("sql/live_worker_queues.sql"))?
                .query_map([now], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            let sharing = rules::workers_sharing(lists.iter().map(String::as_str), &worker.queues);
            if sharing >= max as usize {
                return Ok(false);
            }
            insert_worker(conn, &worker, now, lease)?;
            Ok(true)
        })
        .await
    }

    async fn heartbeat(&self, worker_id: &str, lease: Duration) -> StoreResult<Heartbeat> {
        let worker_id = worker_id.to_string();
        self.write_one(move |conn| {
            let kept = conn
                .prepare_cached(include_str!("sql/heartbeat.sql"))?
                .execute(params![now_ms() + offset_ms(lease), worker_id])?
                > 0;
            Ok(Heartbeat {
                lease_kept: kept,
                restart_epoch: restart_epoch_in(conn)?,
            })
        })
        .await
    }

    async fn deregister_worker(&self, worker_id: &str) -> StoreResult<()> {
        let worker_id = worker_id.to_string();
        let returned = self
            .write(move |conn| {
                let returned = conn
                    .prepare_cached(include_str!("sql/deregister_worker_jobs.sql"))?
                    .execute([&worker_id])?;
                conn.prepare_cached(include_str!("sql/deregister_worker.sql"))?
                    .execute([&worker_id])?;
                Ok(returned)
            })
            .await?;
        if returned > 0 {
            self.wakeup.notify();
        }
        Ok(())
    }

    async fn reserve(&self, claim: Claim<'_>) -> StoreResult<Vec<ReservedJob>> {
        let worker_id = claim.worker_id.to_string();
        let queues = claim.queues.to_vec();
        let limit = claim.limit;
        let look = queues.clone();
        self.write_if(
            move |conn| any_ready(conn, &look),
            Vec::new(),
            move |conn| reserve_in(conn, &worker_id, &queues, limit),
        )
        .await
    }

    async fn settle(&self, worker_id: &str, settlements: &[Settlement]) -> StoreResult<Vec<bool>> {
        // The same write with nothing to claim.
        let (applied, _) = self
            .settle_and_reserve(settlements, Claim::new(worker_id, &[], 0))
            .await?;
        Ok(applied)
    }

    async fn settle_and_reserve(
        &self,
        settlements: &[Settlement],
        claim: Claim<'_>,
    ) -> StoreResult<(Vec<bool>, Vec<ReservedJob>)> {
        let limit = claim.limit;
        if settlements.is_empty() && limit == 0 {
            return Ok((Vec::new(), Vec::new()));
        }
        let worker_id = claim.worker_id.to_string();
        let settlements = rules::storable(settlements).into_owned();
        let queues = claim.queues.to_vec();
        let look = (settlements.is_empty()).then(|| queues.clone());
        let (applied, released, jobs) = self
            .write_if(
                // Nothing to settle: take the write lock only if there is a job to claim.
                move |conn| look.map_or(Ok(true), |queues| any_ready(conn, &queues)),
                (Vec::new(), false, Vec::new()),
                move |conn| {
                    let (applied, released) = if settlements.is_empty() {
                        (Vec::new(), false)
                    } else {
                        settle_in(conn, &worker_id, &settlements)?
                    };
                    let jobs = reserve_in(conn, &worker_id, &queues, limit)?;
                    Ok((applied, released, jobs))
                },
            )
            .await?;
        if released {
            self.wakeup.notify();
        }
        Ok((applied, jobs))
    }

    async fn reap(&self, max_recoveries: u32) -> StoreResult<ReapReport> {
        let report = self
            .write(move |conn| {
                let now = now_ms();
                // The poison-pill count, a rule every store shares, decided in Rust
                // (`rules::is_poison_pill`) on the lost jobs this write transaction just read:
                // nothing can change them before it commits.
                let lost = conn
                    .prepare_cached(include_str!("sql/reap_lost.sql"))?
                    .query_map([now], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                    })?
                    .collect::<Result<Vec<(String, i64, String, String)>, _>>()?;
                let mut failed = 0;
                let mut rescued = Vec::new();
                for (id, recoveries, queue, job) in lost {
                    if !is_poison_pill(recoveries, max_recoveries) {
                        rescued.push((queue, job));
                        continue;
                    }
                    conn.prepare_cached(include_str!("sql/reap_poison_fail.sql"))?
                        .execute(params![id, now])?;
                    let row = conn
                        .prepare_cached(include_str!("sql/reap_poison.sql"))?
                        .query_row([&id], rows::settled)?;
                    workflow::after_settle(conn, &row, workflow::End::Failed, &[], now)?;
                    failed += 1;
                }
                // What is left of the lost jobs goes back to its queues.
                let recovered = conn
                    .prepare_cached(include_str!("sql/reap_recover.sql"))?
                    .execute([now])?;
                let names = rescued.iter().map(|(q, j)| (q.as_str(), j.as_str()));
                super::metrics::add(conn, &crate::metrics::rescued(now, names))?;
                // Slots of dead workers are free; expired unique locks go (periodic jobs leave
                // one per tick).
                conn.prepare_cached(include_str!("sql/reap_slots.sql"))?
                    .execute([now])?;
                conn.prepare_cached(include_str!("sql/reap_locks.sql"))?
                    .execute([now])?;
                let workers_removed = conn
                    .prepare_cached(include_str!("sql/reap_workers.sql"))?
                    .execute([now])?;
                Ok(ReapReport {
                    recovered: recovered as u64,
                    failed,
                    workers_removed: workers_removed as u64,
                })
            })
            .await?;
        if report.recovered > 0 {
            self.wakeup.notify();
        }
        Ok(report)
    }

    async fn next_available_in(&self, queues: &[String]) -> StoreResult<Option<Duration>> {
        let queues = serde_json::to_string(queues).unwrap_or_default();
        let next: Option<i64> = self
            .read(move |conn| {
                Ok(conn
                    .prepare_cached(include_str!("sql/next_available_in.sql"))?
                    // A time another program stored as TEXT reads as due now: the next
                    // reserve claims it (and its worker fails it with the reason).
                    .query_row([queues], |row| {
                        Ok(match row.get_ref(0)? {
                            rusqlite::types::ValueRef::Null => None,
                            rusqlite::types::ValueRef::Integer(at) => Some(at),
                            _ => Some(0),
                        })
                    })?)
            })
            .await?;
        Ok(next.map(|at| Duration::from_millis((at - now_ms()).max(0) as u64)))
    }

    fn wakeups(&self) -> Wakeups {
        self.wakeup.subscribe()
    }

    async fn restart_epoch(&self) -> StoreResult<i64> {
        self.read(restart_epoch_in).await
    }
}

/// Pushes jobs on `conn` (inside the caller's transaction), taking each one's unique lock in
/// the same transaction: a job whose lock is held (and not expired) is not stored and reported
/// as already queued.
pub(super) fn push_in(
    conn: &Connection,
    jobs: &[NewJob],
    now: i64,
) -> StoreResult<Vec<PushOutcome>> {
    let mut insert = conn.prepare_cached(include_str!("sql/push.sql"))?;
    let mut outcomes = Vec::with_capacity(jobs.len());
    for job in jobs {
        let mut unique_key = None;
        if let Some(unique) = &job.unique {
            conn.prepare_cached(include_str!("sql/push_expired_locks.sql"))?
                .execute(params![unique.key, now])?;
            let locked = conn
                .prepare_cached(include_str!("sql/push_take_lock.sql"))?
                .execute(params![
                    unique.key,
                    job.id,
                    unique.until.as_str(),
                    unique.ttl.map(|ttl| now + offset_ms(ttl))
                ])?;
            if locked == 0 {
                outcomes.push(PushOutcome::AlreadyQueued);
                continue;
            }
            unique_key = Some(unique.key.clone());
        }
        let n = insert.execute(params![
            job.id,
            job.queue,
            job.job,
            job.envelope,
            now + offset_ms(job.delay),
            job.retry_for.map(|d| now + offset_ms(d)),
            now,
            job.batch_id,
            unique_key,
            job.tags_column()
        ])?;
        if n > 0 {
            tag_job(conn, &job.id, &job.tags)?;
        }
        // A repeated id within one batch is already queued after its first row.
        outcomes.push(if n > 0 {
            PushOutcome::Queued
        } else {
            PushOutcome::AlreadyQueued
        });
    }
    // The enqueued counts ride with the push, in its transaction.
    let pushed = crate::metrics::queued(jobs, &outcomes);
    super::metrics::add(conn, &crate::metrics::enqueued(now, pushed))?;
    Ok(outcomes)
}

/// Indexes a queued job under each of its tags (nothing for an untagged job).
pub(super) fn tag_job(conn: &Connection, id: &str, tags: &[String]) -> StoreResult<()> {
    if tags.is_empty() {
        return Ok(());
    }
    let mut insert = conn.prepare_cached(include_str!("sql/tag_job.sql"))?;
    for tag in tags {
        insert.execute(params![tag, id])?;
    }
    Ok(())
}

/// Drops a job that leaves the queue from the tag index, if it has tags (`tags`: its column).
pub(super) fn untag_job(conn: &Connection, id: &str, tags: Option<&str>) -> StoreResult<()> {
    if tags.is_some_and(|t| !t.is_empty()) {
        conn.prepare_cached(include_str!("sql/untag_job.sql"))?
            .execute([id])?;
    }
    Ok(())
}

/// Reserves on `conn` (inside the caller's transaction, or autocommit), queue by queue.
fn reserve_in(
    conn: &Connection,
    worker_id: &str,
    queues: &[String],
    limit: usize,
) -> StoreResult<Vec<ReservedJob>> {
    let mut out = Vec::with_capacity(limit.min(1024));
    if limit == 0 {
        return Ok(out);
    }
    let mut claim = conn.prepare_cached(include_str!("sql/reserve.sql"))?;
    let mut found = Vec::new();
    for queue in queues {
        let want = limit - out.len();
        if want == 0 {
            break;
        }
        found.clear();
        let rows = claim.query_map(
            params![worker_id, now_ms(), queue, want as i64],
            rows::reserved,
        )?;
        for row in rows {
            found.push(row?);
        }
        // RETURNING gives no order: put them in claim order.
        found.sort_unstable_by_key(|(job, seq, ..)| (job.available_at, *seq));
        for (mut job, seq, unique_key, rename) in found.drain(..) {
            if rename {
                job.id = give_text_id(conn, &job.id, seq)?;
            }
            // A job unique "until processing" frees its key once a worker holds it.
            if let Some(key) = unique_key {
                conn.prepare_cached(include_str!("sql/reserve_unlock.sql"))?
                    .execute(params![key, job.id])?;
            }
            out.push(job);
        }
    }
    Ok(out)
}

/// Gives a claimed row whose id another program stored as a BLOB (which no TEXT id equals, so
/// no settlement could reach it) the id it reads as, or `unreadable-SEQ` when that one is
/// taken; the worker then fails it under that id with the reason.
fn give_text_id(conn: &Connection, read_as: &str, seq: i64) -> StoreResult<String> {
    let mut rename = conn.prepare_cached("UPDATE spool_jobs SET id = ?1 WHERE seq = ?2")?;
    match rename.execute(params![read_as, seq]) {
        Ok(_) => Ok(read_as.to_owned()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            let id = format!("unreadable-{seq}");
            rename.execute(params![id, seq])?;
            Ok(id)
        }
        Err(e) => Err(e.into()),
    }
}

/// Settles inside the caller's transaction, one fenced statement per job; returns the applied
/// flags (in input order) and whether any job was released (waiting workers should look again).
fn settle_in(
    conn: &Connection,
    worker_id: &str,
    settlements: &[Settlement],
) -> StoreResult<(Vec<bool>, bool)> {
    let now = now_ms();
    let mut applied = Vec::with_capacity(settlements.len());
    let mut completed: i64 = 0;
    let mut released = false;
    for settlement in settlements {
        let done = match settlement {
            Settlement::Complete {
                id,
                token,
                follow_ups,
                result,
            } => {
                let row = delete_settled(conn, id, worker_id, *token)?;
                if let Some(row) = &row {
                    completed += 1;
                    let end = workflow::End::Completed {
                        result: result.as_deref(),
                    };
                    workflow::after_settle(conn, row, end, follow_ups, now)?;
                }
                row.is_some()
            }
            Settlement::Release {
                id,
                token,
                delay,
                kind,
                error,
            } => {
                released = true;
                let (refund, deferral, exception) = kind.counter_effects();
                let applied = conn
                    .prepare_cached(include_str!("sql/settle_release.sql"))?
                    .execute(params![
                        id,
                        worker_id,
                        token,
                        now + offset_ms(*delay),
                        refund,
                        deferral,
                        exception,
                        error
                    ])?
                    > 0;
                if applied {
                    workflow::release_slots(conn, id)?;
                }
                applied
            }
            Settlement::Fail {
                id,
                token,
                error,
                causes,
                follow_ups,
            } => {
                let causes = serde_json::to_string(causes).unwrap_or_else(|_| "[]".into());
                conn.prepare_cached(include_str!("sql/settle_fail.sql"))?
                    .execute(params![id, worker_id, token, error, causes, now])?;
                let row = delete_settled(conn, id, worker_id, *token)?;
                if let Some(row) = &row {
                    workflow::after_settle(conn, row, workflow::End::Failed, follow_ups, now)?;
                }
                row.is_some()
            }
        };
        applied.push(done);
    }
    if completed > 0 {
        conn.prepare_cached(include_str!("sql/settle_processed.sql"))?
            .execute([completed])?;
    }
    Ok((applied, released))
}

/// Deletes a job its worker holds under `token`, returning what its side effects need.
fn delete_settled(
    conn: &Connection,
    id: &str,
    worker_id: &str,
    token: i64,
) -> StoreResult<Option<rows::Settled>> {
    Ok(conn
        .prepare_cached(include_str!("sql/settle_delete.sql"))?
        .query_row(params![id, worker_id, token], rows::settled)
        .optional()?)
}

/// The current restart epoch (0 if never signalled), on either connection.
/// Registers (or renews) a worker's row, its lease starting `now`.
fn insert_worker(
    conn: &Connection,
    worker: &WorkerInfo,
    now: i64,
    lease: Duration,
) -> StoreResult<()> {
    conn.prepare_cached(include_str!("sql/register_worker.sql"))?
        .execute(params![
            worker.id,
            worker.host,
            worker.pid as i64,
            serde_json::to_string(&worker.queues).unwrap_or_default(),
            now,
            now + offset_ms(lease)
        ])?;
    Ok(())
}

fn restart_epoch_in(conn: &Connection) -> StoreResult<i64> {
    let epoch: Option<i64> = conn
        .prepare_cached(include_str!("sql/restart_epoch.sql"))?
        .query_row([], |row| row.get(0))
        .optional()?;
    Ok(epoch.unwrap_or(0))
}

/// Whether any of `queues` has a job to claim, read on `conn` outside a transaction (without
/// the write lock). Every write of any process wakes every idle worker on the file; most of
/// them find nothing, and finding nothing this way keeps them from queueing for the one
/// writer behind the workers that do have work. A job pushed right after this read wakes
/// them again.
fn any_ready(conn: &Connection, queues: &[String]) -> StoreResult<bool> {
    let mut ready = conn.prepare_cached(include_str!("sql/any_ready.sql"))?;
    let now = now_ms();
    for queue in queues {
        if ready.query_row(params![queue, now], |row| row.get::<_, bool>(0))? {
            return Ok(true);
        }
    }
    Ok(false)
}
