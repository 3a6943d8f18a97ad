//! Decoding SQLite rows into the contract's types, one function per statement shape (the
//! column order each decoder expects is the one its statements in `sql/` select).

use rusqlite::Row;

use crate::store::{
    BatchInfo, CompletedJob, FailedJob, JobInfo, Progress, ReservedJob, WorkerStatus, rfc3339_ms,
    rules,
};

/// A stored count as the contract's `u32`, saturating.
pub(super) fn count(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

/// Decodes a row of `reserve.sql`; also returns `seq` for ordering and the job's unique key.
pub(super) fn reserved(row: &Row<'_>) -> rusqlite::Result<(ReservedJob, i64, Option<String>)> {
    let job = ReservedJob {
        id: row.get(0)?,
        queue: row.get(1)?,
        envelope: row.get(2)?,
        token: row.get(3)?,
        attempts: count(row.get(4)?),
        recoveries: count(row.get(5)?),
        deferrals: count(row.get(6)?),
        exceptions: count(row.get(7)?),
        retry_until: row.get(8)?,
        last_error: row.get(9)?,
        reserved_at: row.get(10)?,
        available_at: row.get(11)?,
    };
    Ok((job, row.get(12)?, row.get(13)?))
}

/// What a settled job's row said about its side effects.
#[derive(Debug)]
pub(super) struct Settled {
    pub(super) id: String,
    pub(super) queue: String,
    pub(super) job: String,
    pub(super) batch_id: Option<String>,
    pub(super) unique_key: Option<String>,
}

/// Decodes a row a settling `DELETE` returns (`settle_delete.sql`, `reap_poison.sql`).
pub(super) fn settled(row: &Row<'_>) -> rusqlite::Result<Settled> {
    Ok(Settled {
        id: row.get(0)?,
        queue: row.get(1)?,
        job: row.get(2)?,
        batch_id: row.get(3)?,
        unique_key: row.get(4)?,
    })
}

/// Decodes a row of `jobs.sql` / `job.sql`: the job's columns followed by the store's now (ms).
pub(super) fn job_info(row: &Row<'_>) -> rusqlite::Result<JobInfo> {
    let worker: Option<String> = row.get(3)?;
    let available_at: i64 = row.get(4)?;
    let now: i64 = row.get(12)?;
    let progress: Option<i64> = row.get(10)?;
    let state = rules::job_state(worker.is_some(), available_at, now);
    Ok(JobInfo {
        id: row.get(0)?,
        queue: row.get(1)?,
        job: row.get(2)?,
        state,
        attempts: count(row.get(5)?),
        recoveries: count(row.get(6)?),
        deferrals: count(row.get(7)?),
        last_error: row.get(8)?,
        available_at,
        worker,
        envelope: row.get(9)?,
        progress: progress.map(|p| Progress {
            percent: p.clamp(0, 100) as u8,
            message: row.get(11).ok().flatten(),
        }),
    })
}

/// Decodes a row of `failed_jobs.sql` / `failed_job.sql`.
pub(super) fn failed_job(row: &Row<'_>) -> rusqlite::Result<FailedJob> {
    let causes: String = row.get(5)?;
    Ok(FailedJob {
        id: row.get(0)?,
        queue: row.get(1)?,
        job: row.get(2)?,
        envelope: row.get(3)?,
        error: row.get(4)?,
        causes: serde_json::from_str(&causes).unwrap_or_else(|_| vec![causes]),
        attempts: count(row.get(6)?),
        failed_at: rfc3339_ms(row.get(7)?),
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

/// Decodes a row of `job_result.sql`. A result that is not JSON (the store keeps what the
/// handler gave) comes back as a JSON string.
pub(super) fn completed_job(row: &Row<'_>) -> rusqlite::Result<CompletedJob> {
    let result: Option<String> = row.get(4)?;
    Ok(CompletedJob {
        id: row.get(0)?,
        queue: row.get(1)?,
        job: row.get(2)?,
        batch_id: row.get(3)?,
        result: result.map(|r| serde_json::from_str(&r).unwrap_or(serde_json::Value::String(r))),
        completed_at: rfc3339_ms(row.get(5)?),
    })
}
