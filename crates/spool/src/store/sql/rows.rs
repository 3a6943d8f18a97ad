//! Row decoding shared by the SQL server stores: one function per value type. Both stores use
//! the same column names and BIGINT integers, so one decoder serves either driver's rows.

use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::store::{
    BatchInfo, CompletedJob, FailedJob, JobInfo, Progress, ReservedJob, rfc3339_ms,
    rules::job_state,
};

/// Columns a reservation returns, in this order.
// The PostgreSQL store writes its column lists out in its `.sql` files (its tests check them
// against these), so without the MySQL store these are unused outside tests.
#[cfg_attr(not(feature = "mysql"), allow(dead_code))]
pub(crate) const RESERVED_COLUMNS: &str = "id, queue, envelope, token, attempts, recoveries, \
     deferrals, exceptions, retry_until, last_error, reserved_at, available_at, seq";

/// Columns a job listing selects, in this order (followed by the store's "now", `reserved_at`
/// and `tags`).
#[cfg_attr(not(feature = "mysql"), allow(dead_code))]
pub(crate) const JOB_COLUMNS: &str = "id, queue, job, worker_id, available_at, attempts, recoveries, \
     deferrals, last_error, envelope, progress, progress_message";

/// Columns a failed listing selects, in this order.
#[cfg_attr(not(feature = "mysql"), allow(dead_code))]
pub(crate) const FAILED_COLUMNS: &str =
    "id, queue, job, envelope, error, causes, attempts, failed_at, tags";

/// A row of either SQL server, read by column position. Both servers return the text, BIGINT
/// and boolean columns the decoders here read in forms their drivers decode alike, so one
/// decoder serves either driver's rows.
pub(crate) trait ServerRow {
    /// A text column.
    fn text(&self, index: usize) -> Result<String, sqlx::Error>;
    /// A text column that may be NULL.
    fn opt_text(&self, index: usize) -> Result<Option<String>, sqlx::Error>;
    /// A BIGINT column.
    fn int(&self, index: usize) -> Result<i64, sqlx::Error>;
    /// A BIGINT column that may be NULL.
    fn opt_int(&self, index: usize) -> Result<Option<i64>, sqlx::Error>;
    /// A boolean column.
    fn flag(&self, index: usize) -> Result<bool, sqlx::Error>;
}

impl<R> ServerRow for R
where
    R: Row,
    usize: ColumnIndex<R>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    bool: for<'r> Decode<'r, R::Database> + Type<R::Database>,
{
    fn text(&self, index: usize) -> Result<String, sqlx::Error> {
        self.try_get(index)
    }

    fn opt_text(&self, index: usize) -> Result<Option<String>, sqlx::Error> {
        self.try_get(index)
    }

    fn int(&self, index: usize) -> Result<i64, sqlx::Error> {
        self.try_get(index)
    }

    fn opt_int(&self, index: usize) -> Result<Option<i64>, sqlx::Error> {
        self.try_get(index)
    }

    fn flag(&self, index: usize) -> Result<bool, sqlx::Error> {
        self.try_get(index)
    }
}

fn count(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

/// Decodes a row of [`RESERVED_COLUMNS`]; also returns `seq` for ordering.
pub(crate) fn reserved(row: &impl ServerRow) -> Result<(ReservedJob, i64), sqlx::Error> {
    let envelope = row.text(2)?;
    let job = ReservedJob {
        unreadable: None,
        id: row.text(0)?,
        queue: row.text(1)?,
        envelope,
        token: row.int(3)?,
        attempts: count(row.int(4)?),
        recoveries: count(row.int(5)?),
        deferrals: count(row.int(6)?),
        exceptions: count(row.int(7)?),
        retry_until: row.opt_int(8)?,
        last_error: row.opt_text(9)?,
        reserved_at: row.int(10)?,
        available_at: row.int(11)?,
    };
    Ok((job, row.int(12)?))
}

/// Decodes a row of [`JOB_COLUMNS`] followed by the store's now (ms).
pub(crate) fn job_info(row: &(impl ServerRow + ?Sized)) -> Result<JobInfo, sqlx::Error> {
    let worker: Option<String> = row.opt_text(3)?;
    let available_at: i64 = row.int(4)?;
    let now: i64 = row.int(12)?;
    let progress: Option<i64> = row.opt_int(10)?;
    let state = job_state(worker.is_some(), available_at, now);
    let envelope = row.text(9)?;
    let (job, unreadable) = crate::store::unreadable::listed(row.text(2)?, &envelope, None);
    Ok(JobInfo {
        // Only while a worker holds it (a released job keeps its last reservation's time).
        reserved_at: if worker.is_some() {
            row.opt_int(13)?
        } else {
            None
        },
        unreadable,
        id: row.text(0)?,
        queue: row.text(1)?,
        job,
        state,
        attempts: count(row.int(5)?),
        recoveries: count(row.int(6)?),
        deferrals: count(row.int(7)?),
        last_error: row.opt_text(8)?,
        available_at,
        worker,
        envelope,
        progress: progress
            .map(|p| -> Result<Progress, sqlx::Error> {
                Ok(Progress {
                    percent: p.clamp(0, 100) as u8,
                    message: row.opt_text(11)?,
                })
            })
            .transpose()?,
        tags: crate::store::tags_of_column(row.opt_text(14)?.as_deref()),
    })
}

/// Decodes a row of [`FAILED_COLUMNS`].
pub(crate) fn failed_job(row: &(impl ServerRow + ?Sized)) -> Result<FailedJob, sqlx::Error> {
    let envelope = row.text(3)?;
    let causes: String = row.text(5)?;
    Ok(FailedJob {
        id: row.text(0)?,
        queue: row.text(1)?,
        job: named(row.text(2)?, &envelope),
        envelope,
        error: row.text(4)?,
        causes: serde_json::from_str(&causes).unwrap_or_else(|_| vec![causes]),
        attempts: count(row.int(6)?),
        failed_at: rfc3339_ms(row.int(7)?),
        tags: crate::store::tags_of_column(row.opt_text(8)?.as_deref()),
    })
}

/// Columns a batch listing selects, in this order.
#[cfg_attr(not(feature = "mysql"), allow(dead_code))]
pub(crate) const BATCH_COLUMNS: &str = "id, name, total, pending, failed, failed_ids, \
     allow_failures, created_at, cancelled_at, finished_at";

/// Decodes a PostgreSQL row of [`BATCH_COLUMNS`], whose failed ids are a `TEXT[]`.
#[cfg(feature = "postgres")]
pub(crate) fn batch_info(row: &sqlx::postgres::PgRow) -> Result<BatchInfo, sqlx::Error> {
    batch_info_with(row, row.try_get(5)?)
}

/// Decodes a row of [`BATCH_COLUMNS`]. The failed ids (column 5) are stored differently by
/// each server (a `TEXT[]` on PostgreSQL, a JSON array on MySQL), so the caller decodes them.
pub(crate) fn batch_info_with(
    row: &impl ServerRow,
    failed_ids: Vec<String>,
) -> Result<BatchInfo, sqlx::Error> {
    let total = u64::try_from(row.int(2)?).unwrap_or(0);
    let pending = u64::try_from(row.int(3)?).unwrap_or(0);
    Ok(BatchInfo {
        id: row.text(0)?,
        name: row.text(1)?,
        total,
        pending,
        failed: u64::try_from(row.int(4)?).unwrap_or(0),
        progress: BatchInfo::percent(total, pending),
        allow_failures: row.flag(6)?,
        failed_ids,
        created_at: rfc3339_ms(row.int(7)?),
        cancelled_at: row.opt_int(8)?.map(rfc3339_ms),
        finished_at: row.opt_int(9)?.map(rfc3339_ms),
    })
}

/// Columns a completed record selects, in this order (`has_result` as a BIGINT 0 or 1).
#[cfg_attr(not(feature = "mysql"), allow(dead_code))]
pub(crate) const COMPLETED_COLUMNS: &str = "id, queue, job, batch_id, tags, attempts, \
     enqueued_at, started_at, completed_at, has_result, result";

/// Decodes a row of [`COMPLETED_COLUMNS`]. A result that is not JSON (the store keeps what the
/// handler gave) comes back as a JSON string.
pub(crate) fn completed_job(row: &(impl ServerRow + ?Sized)) -> Result<CompletedJob, sqlx::Error> {
    let result: Option<String> = row.opt_text(10)?;
    Ok(CompletedJob {
        id: row.text(0)?,
        queue: row.text(1)?,
        job: row.text(2)?,
        batch_id: row.opt_text(3)?,
        tags: crate::store::tags_of_column(row.opt_text(4)?.as_deref()),
        attempts: count(row.int(5)?),
        enqueued_at: row.opt_int(6)?.map(rfc3339_ms),
        started_at: row.opt_int(7)?.map(rfc3339_ms),
        completed_at: rfc3339_ms(row.int(8)?),
        has_result: row.int(9)? != 0,
        result: result.map(|r| serde_json::from_str(&r).unwrap_or(serde_json::Value::String(r))),
    })
}

/// Sorts reserved rows into claim order (RETURNING gives no order).
pub(crate) fn in_claim_order(mut rows: Vec<(ReservedJob, i64)>) -> Vec<ReservedJob> {
    rows.sort_by_key(|(job, seq)| (job.available_at, *seq));
    rows.into_iter().map(|(job, _)| job).collect()
}

/// The job name a record shows: the envelope's (see [`unreadable::listed`]).
///
/// [`unreadable::listed`]: crate::store::unreadable::listed
fn named(column: String, envelope: &str) -> String {
    crate::store::unreadable::listed(column, envelope, None).0
}
