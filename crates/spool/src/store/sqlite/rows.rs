//! Decoding SQLite rows into the contract's types, one function per statement shape (the
//! column order each decoder expects is the one its statements in `sql/` select).

use rusqlite::{Row, types::ValueRef};

use crate::store::{
    BatchInfo, CompletedJob, FailedJob, JobInfo, Progress, ReservedJob, WorkerStatus, rfc3339_ms,
    rules, unreadable,
};

/// The envelope at `i`, however another program stored it (SQLite keeps any type in any
/// column): its text, and why a worker cannot read it, if it cannot. A BLOB of UTF-8 text
/// (what Python's `sqlite3` writes for `bytes`) reads like TEXT.
fn envelope(row: &Row<'_>, i: usize) -> rusqlite::Result<(String, Option<String>)> {
    Ok(match row.get_ref(i)? {
        ValueRef::Text(b) => unreadable::envelope_from_bytes(b.to_vec(), "TEXT"),
        ValueRef::Blob(b) => unreadable::envelope_from_bytes(b.to_vec(), "a BLOB"),
        ValueRef::Integer(n) => (
            n.to_string(),
            Some(format!(
                "unreadable envelope: stored as the INTEGER {n}, not JSON text"
            )),
        ),
        ValueRef::Real(f) => (
            f.to_string(),
            Some(format!(
                "unreadable envelope: stored as the REAL {f}, not JSON text"
            )),
        ),
        ValueRef::Null => (
            String::new(),
            Some("unreadable envelope: stored as NULL".into()),
        ),
    })
}

/// A number column (a time in ms since the epoch, a counter) at `i`, or why it is not one (e.g. TEXT written by
/// another program, which SQLite sorts after every number, so it would never come due).
fn time(row: &Row<'_>, i: usize, column: &str) -> rusqlite::Result<Result<i64, String>> {
    Ok(match row.get_ref(i)? {
        ValueRef::Integer(n) => Ok(n),
        ValueRef::Real(f) if f.is_finite() => Ok(f as i64),
        other => {
            let shown = match other {
                ValueRef::Text(b) => format!("the TEXT '{}'", String::from_utf8_lossy(b)),
                ValueRef::Blob(b) => format!("a BLOB of {} bytes", b.len()),
                ValueRef::Null => "NULL".into(),
                _ => "a non-finite REAL".into(),
            };
            Err(format!(
                "unreadable row: `{column}` is stored as {shown}, not as an INTEGER"
            ))
        }
    })
}

/// A text column (an id, a queue name) at `i` however another program stored it: its text
/// (bytes that are not UTF-8 read with U+FFFD in their place) and, when it is not TEXT in
/// UTF-8, why (Python's `sqlite3` stores `bytes` as a BLOB, which never equals a TEXT value).
pub(super) fn text(
    row: &Row<'_>,
    i: usize,
    column: &str,
) -> rusqlite::Result<(String, Option<String>)> {
    let stored =
        |kind: &str| format!("unreadable row: `{column}` is stored as {kind}, not as TEXT");
    Ok(match row.get_ref(i)? {
        ValueRef::Text(b) => match std::str::from_utf8(b) {
            Ok(s) => (s.to_owned(), None),
            Err(_) => (
                String::from_utf8_lossy(b).into_owned(),
                Some(stored("bytes that are not UTF-8")),
            ),
        },
        ValueRef::Blob(b) => (
            String::from_utf8_lossy(b).into_owned(),
            Some(stored("a BLOB")),
        ),
        ValueRef::Integer(n) => (n.to_string(), Some(stored("an INTEGER"))),
        ValueRef::Real(f) => (f.to_string(), Some(stored("a REAL"))),
        ValueRef::Null => (String::new(), Some(stored("NULL"))),
    })
}

/// Text at `i` that may hold bytes that are not UTF-8 (copied from an unreadable row),
/// read with U+FFFD in their place.
fn lossy(row: &Row<'_>, i: usize) -> rusqlite::Result<String> {
    Ok(envelope(row, i)?.0)
}

/// A stored count as the contract's `u32`, saturating.
pub(super) fn count(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

/// A claimed row: the job, its `seq` (for ordering), its unique key, and whether its id is
/// not TEXT (the claim gives it a TEXT id before the worker sees it: see `reserve_in`).
pub(super) type Claimed = (ReservedJob, i64, Option<String>, bool);

/// Decodes a row of `reserve.sql`.
/// The row is claimed already: a value another program wrote in a form Spool does not read
/// makes the job unreadable (named), never an error that would strand the whole claim.
pub(super) fn reserved(row: &Row<'_>) -> rusqlite::Result<Claimed> {
    let (id, bad_id) = text(row, 0, "id")?;
    let rename = bad_id.is_some();
    let (queue, bad_queue) = text(row, 1, "queue")?;
    let (envelope, mut unreadable) = envelope(row, 2)?;
    unreadable = bad_id.or(bad_queue).or(unreadable);
    let reserved_at: i64 = row.get(10)?;
    let mut number = |i: usize, column: &str, fallback: i64| -> rusqlite::Result<i64> {
        Ok(time(row, i, column)?.unwrap_or_else(|why| {
            unreadable.get_or_insert(why);
            fallback
        }))
    };
    let available_at = number(11, "available_at", reserved_at)?;
    let counters = [
        number(4, "attempts", 1)?,
        number(5, "recoveries", 0)?,
        number(6, "deferrals", 0)?,
        number(7, "exceptions", 0)?,
    ];
    let retry_until = match row.get_ref(8)? {
        ValueRef::Null => None,
        _ => Some(number(8, "retry_until", reserved_at)?),
    };
    let last_error = match row.get_ref(9)? {
        ValueRef::Null => None,
        _ => Some(lossy(row, 9)?),
    };
    let job = ReservedJob {
        id,
        queue,
        envelope,
        token: row.get(3)?,
        attempts: count(counters[0]),
        recoveries: count(counters[1]),
        deferrals: count(counters[2]),
        exceptions: count(counters[3]),
        retry_until,
        last_error,
        reserved_at,
        available_at,
        unreadable,
    };
    Ok((job, row.get(12)?, row.get(13).unwrap_or(None), rename))
}

/// What a settled job's row said about its side effects.
#[derive(Debug)]
pub(super) struct Settled {
    pub(super) id: String,
    pub(super) queue: String,
    pub(super) job: String,
    pub(super) batch_id: Option<String>,
    pub(super) unique_key: Option<String>,
    /// The tags column, comma-joined.
    pub(super) tags: Option<String>,
    pub(super) attempts: i64,
    pub(super) created_at: i64,
    pub(super) reserved_at: Option<i64>,
}

/// Decodes a row a settling `DELETE` returns (`settle_delete.sql`, `reap_poison.sql`). What
/// only the history record needs (counters, times) reads leniently: a value another program
/// wrote in another form must not stop the settlement.
pub(super) fn settled(row: &Row<'_>) -> rusqlite::Result<Settled> {
    Ok(Settled {
        id: row.get(0)?,
        queue: row.get(1)?,
        job: row.get(2)?,
        batch_id: row.get(3)?,
        unique_key: row.get(4)?,
        tags: row.get(5).unwrap_or(None),
        attempts: time(row, 6, "attempts")?.unwrap_or(0),
        created_at: time(row, 7, "created_at")?.unwrap_or(0),
        reserved_at: time(row, 8, "reserved_at")?.ok(),
    })
}

/// Decodes a row of `jobs.sql` / `job.sql`: the job's columns followed by the store's now (ms).
pub(super) fn job_info(row: &Row<'_>) -> rusqlite::Result<JobInfo> {
    let worker: Option<String> = row.get(3)?;
    let now: i64 = row.get(12)?;
    let (envelope, mut unreadable) = envelope(row, 9)?;
    let available_at = match time(row, 4, "available_at")? {
        Ok(at) => at,
        Err(why) => {
            unreadable = unreadable.or(Some(why));
            now
        }
    };
    let mut number = |i: usize, column: &str| -> rusqlite::Result<i64> {
        Ok(time(row, i, column)?.unwrap_or_else(|why| {
            unreadable.get_or_insert(why);
            0
        }))
    };
    let counters = [
        number(5, "attempts")?,
        number(6, "recoveries")?,
        number(7, "deferrals")?,
    ];
    let (id, bad_id) = text(row, 0, "id")?;
    let (queue, bad_queue) = text(row, 1, "queue")?;
    let unreadable = bad_id.or(bad_queue).or(unreadable);
    let (job, unreadable) = unreadable::listed(lossy(row, 2)?, &envelope, unreadable);
    let progress: Option<i64> = row.get::<_, Option<i64>>(10).unwrap_or(None);
    let last_error = match row.get_ref(8)? {
        ValueRef::Null => None,
        _ => Some(lossy(row, 8)?),
    };
    let state = rules::job_state(worker.is_some(), available_at, now);
    Ok(JobInfo {
        // Only while a worker holds it (a released job keeps its last reservation's time).
        reserved_at: if worker.is_some() {
            row.get::<_, Option<i64>>(13).unwrap_or(None)
        } else {
            None
        },
        id,
        queue,
        job,
        state,
        attempts: count(counters[0]),
        recoveries: count(counters[1]),
        deferrals: count(counters[2]),
        last_error,
        available_at,
        worker,
        envelope,
        progress: progress.map(|p| Progress {
            percent: p.clamp(0, 100) as u8,
            message: row.get(11).ok().flatten(),
        }),
        tags: crate::store::tags_of_column(row.get::<_, Option<String>>(14)?.as_deref()),
        unreadable,
    })
}

/// Decodes a row of `failed_jobs.sql` / `failed_job.sql`.
pub(super) fn failed_job(row: &Row<'_>) -> rusqlite::Result<FailedJob> {
    let envelope = lossy(row, 3)?;
    let causes: String = row.get(5)?;
    Ok(FailedJob {
        id: lossy(row, 0)?,
        queue: lossy(row, 1)?,
        job: unreadable::listed(lossy(row, 2)?, &envelope, None).0,
        envelope,
        error: row.get(4)?,
        causes: serde_json::from_str(&causes).unwrap_or_else(|_| vec![causes]),
        attempts: count(row.get(6)?),
        failed_at: rfc3339_ms(row.get(7)?),
        tags: crate::store::tags_of_column(row.get::<_, Option<String>>(8)?.as_deref()),
    })
}

/// Decodes a row of `stats_workers.sql`.
pub(super) fn worker_status(row: &Row<'_>) -> rusqlite::Result<WorkerStatus> {
    let queues: String = row.get(3)?;
    let busy: Option<String> = row.get(4)?;
    let (last_seen_ms, lease_ms) = WorkerStatus::seen(row.get(5)?, row.get(6)?, row.get(7)?);
    Ok(WorkerStatus {
        last_seen_ms,
        lease_ms,
        id: row.get(0)?,
        host: row.get(1)?,
        pid: row.get::<_, i64>(2)? as u32,
        queues: serde_json::from_str(&queues).unwrap_or_default(),
        busy: busy
            .and_then(|b| serde_json::from_str(&b).ok())
            .unwrap_or_default(),
    })
}

/// Decodes a row of `batch.sql` / `batches.sql`.
pub(super) fn batch_info(row: &Row<'_>) -> rusqlite::Result<BatchInfo> {
    let total = rules::count(row.get(2)?);
    let pending = rules::count(row.get(3)?);
    let failed_ids: String = row.get(5)?;
    Ok(BatchInfo {
        id: row.get(0)?,
        name: row.get(1)?,
        total,
        pending,
        failed: rules::count(row.get(4)?),
        progress: BatchInfo::percent(total, pending),
        allow_failures: row.get(6)?,
        failed_ids: serde_json::from_str(&failed_ids).unwrap_or_default(),
        created_at: rfc3339_ms(row.get(7)?),
        cancelled_at: row.get::<_, Option<i64>>(8)?.map(rfc3339_ms),
        finished_at: row.get::<_, Option<i64>>(9)?.map(rfc3339_ms),
    })
}

/// Decodes a row of `job_result.sql` or `completed_jobs.sql`: id, queue, job, batch, tags,
/// attempts, enqueued, started, completed, whether a result is kept, the result. A result that
/// is not JSON (the store keeps what the handler gave) comes back as a JSON string.
pub(super) fn completed_job(row: &Row<'_>) -> rusqlite::Result<CompletedJob> {
    let result: Option<String> = row.get(10)?;
    Ok(CompletedJob {
        id: row.get(0)?,
        queue: row.get(1)?,
        job: row.get(2)?,
        batch_id: row.get(3)?,
        tags: crate::store::tags_of_column(row.get::<_, Option<String>>(4)?.as_deref()),
        attempts: count(row.get(5)?),
        enqueued_at: row.get::<_, Option<i64>>(6)?.map(rfc3339_ms),
        started_at: row.get::<_, Option<i64>>(7)?.map(rfc3339_ms),
        completed_at: rfc3339_ms(row.get(8)?),
        has_result: row.get(9)?,
        result: result.map(|r| serde_json::from_str(&r).unwrap_or(serde_json::Value::String(r))),
    })
}
