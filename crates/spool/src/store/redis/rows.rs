//! Reading script replies and stored records into the contract's types. Server data is never
//! trusted: a reply of the wrong shape becomes a [`StoreError`], never a panic.

use crate::store::rules::count;
use redis::Value;
use serde::{Deserialize, Serialize};

use crate::store::rules::job_state;
use crate::store::{
    BatchInfo, FailedJob, JobInfo, Progress, ReservedJob, StoreError, StoreResult, rfc3339_ms,
    tags_of_column, unreadable,
};

/// A worker's registration as stored (the scripts add `started_at`).
#[derive(Serialize, Deserialize)]
pub(super) struct WorkerRecord {
    pub(super) host: String,
    pub(super) pid: u32,
    pub(super) queues: Vec<String>,
    pub(super) lease_ms: i64,
    #[serde(default)]
    pub(super) started_at: i64,
}

pub(super) fn malformed(what: &str, value: &Value) -> StoreError {
    StoreError::Other(format!("malformed reply from Redis ({what}): {value:?}"))
}

/// An array reply's items.
pub(super) fn array<'a>(value: &'a Value, what: &str) -> StoreResult<&'a [Value]> {
    match value {
        Value::Array(items) | Value::Set(items) => Ok(items),
        // Lua turns an empty table into an empty array, but be lenient about nil too.
        Value::Nil => Ok(&[]),
        other => Err(malformed(what, other)),
    }
}

/// An array reply of exactly `N` items.
pub(super) fn fixed<'a, const N: usize>(
    value: &'a Value,
    what: &str,
) -> StoreResult<&'a [Value; N]> {
    array(value, what)?
        .try_into()
        .map_err(|_| malformed(what, value))
}

/// Text, from a bulk or simple string.
pub(super) fn text(value: &Value, what: &str) -> StoreResult<String> {
    opt_text(value, what)?.ok_or_else(|| malformed(what, value))
}

/// Text, or `None` for nil.
pub(super) fn opt_text(value: &Value, what: &str) -> StoreResult<Option<String>> {
    match value {
        Value::Nil => Ok(None),
        Value::BulkString(bytes) => String::from_utf8(bytes.clone())
            .map(Some)
            .map_err(|_| malformed(what, value)),
        Value::SimpleString(s) => Ok(Some(s.clone())),
        Value::VerbatimString { text, .. } => Ok(Some(text.clone())),
        other => Err(malformed(what, other)),
    }
}

/// An integer, from an integer reply or a decimal string (hash fields are strings).
pub(super) fn int(value: &Value, what: &str) -> StoreResult<i64> {
    opt_int(value, what)?.ok_or_else(|| malformed(what, value))
}

/// An integer, or `None` for nil.
pub(super) fn opt_int(value: &Value, what: &str) -> StoreResult<Option<i64>> {
    match value {
        Value::Nil => Ok(None),
        Value::Int(n) => Ok(Some(*n)),
        Value::BulkString(_) | Value::SimpleString(_) => {
            let s = text(value, what)?;
            // Lua writes whole numbers as `%.17g`, which stays integral below 1e17.
            s.parse::<i64>()
                .ok()
                .or_else(|| {
                    s.parse::<f64>()
                        .ok()
                        .filter(|f| f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15)
                        .map(|f| f as i64)
                })
                .map(Some)
                .ok_or_else(|| malformed(what, value))
        }
        other => Err(malformed(what, other)),
    }
}

fn counter(value: &Value, what: &str) -> StoreResult<u32> {
    Ok(u32::try_from(int(value, what)?.max(0)).unwrap_or(u32::MAX))
}

/// An envelope as Redis returned it: its text, and why a worker cannot read it, if it
/// cannot (bytes that are not UTF-8, written past Spool, must not fail the whole reply: the
/// script has already claimed every job in it).
fn envelope(value: &Value) -> StoreResult<(String, Option<String>)> {
    match value {
        Value::BulkString(bytes) => Ok(unreadable::envelope_from_bytes(
            bytes.clone(),
            "a Redis string",
        )),
        other => Ok((text(other, "envelope")?, None)),
    }
}

/// A stored time (ms since the epoch), or why it is not one: a value written past Spool
/// must not fail the whole reply.
fn time(value: &Value, what: &str) -> Result<i64, String> {
    int(value, what).map_err(|_| {
        let shown = match value {
            Value::BulkString(b) => format!("'{}'", String::from_utf8_lossy(b)),
            other => format!("{other:?}"),
        };
        format!("unreadable job: `{what}` is stored as {shown}, not a number")
    })
}

/// A job claimed by the reserve script (see `reserve` in `queue.lua`).
pub(super) fn reserved(value: &Value, queue: &str) -> StoreResult<ReservedJob> {
    let [
        id,
        envelope,
        token,
        attempts,
        recoveries,
        deferrals,
        exceptions,
        retry_until,
        last_error,
        reserved_at,
        available_at,
    ] = fixed::<11>(value, "reserved job")?;
    let (envelope, mut unreadable) = self::envelope(envelope)?;
    let reserved_at = int(reserved_at, "reserved_at")?;
    let available_at = time(available_at, "available_at").unwrap_or_else(|why| {
        unreadable = unreadable.take().or(Some(why));
        reserved_at
    });
    Ok(ReservedJob {
        unreadable,
        id: text(id, "job id")?,
        queue: queue.to_string(),
        envelope,
        token: int(token, "token")?,
        attempts: counter(attempts, "attempts")?,
        recoveries: counter(recoveries, "recoveries")?,
        deferrals: counter(deferrals, "deferrals")?,
        exceptions: counter(exceptions, "exceptions")?,
        retry_until: opt_int(retry_until, "retry_until")?,
        last_error: opt_text(last_error, "last_error")?,
        reserved_at,
        available_at,
    })
}

/// The claimed jobs of one reserve call, in claim order.
pub(super) fn reserved_jobs(value: &Value, queue: &str) -> StoreResult<Vec<ReservedJob>> {
    array(value, "reserved jobs")?
        .iter()
        .map(|job| reserved(job, queue))
        .collect()
}

/// Applied flags of a settle call.
pub(super) fn flags(value: &Value, expected: usize) -> StoreResult<Vec<bool>> {
    let items = array(value, "settle flags")?;
    if items.len() != expected {
        return Err(malformed("settle flags", value));
    }
    items
        .iter()
        .map(|flag| Ok(int(flag, "settle flag")? != 0))
        .collect()
}

/// A job of the list script, with its `seq` for ordering.
pub(super) fn job_info(value: &Value, queue: &str, now: i64) -> StoreResult<(JobInfo, i64)> {
    let [
        id,
        job,
        worker,
        available_at,
        attempts,
        recoveries,
        deferrals,
        last_error,
        envelope,
        seq,
        progress,
        progress_message,
        reserved_at,
        tags,
    ] = fixed::<14>(value, "job")?;
    let worker = opt_text(worker, "worker")?;
    let (envelope, mut unreadable) = self::envelope(envelope)?;
    let available_at = time(available_at, "available_at").unwrap_or_else(|why| {
        unreadable = unreadable.take().or(Some(why));
        now
    });
    let state = job_state(worker.is_some(), available_at, now);
    let mut number = |value: &Value, what: &str| {
        time(value, what).unwrap_or_else(|why| {
            unreadable.get_or_insert(why);
            0
        })
    };
    let counters = [
        number(attempts, "attempts"),
        number(recoveries, "recoveries"),
        number(deferrals, "deferrals"),
    ]
    .map(|n| u32::try_from(n.max(0)).unwrap_or(u32::MAX));
    let (job, unreadable) = unreadable::listed(text(job, "job name")?, &envelope, unreadable);
    let info = JobInfo {
        reserved_at: if worker.is_some() {
            opt_int(reserved_at, "reserved_at").unwrap_or(None)
        } else {
            None
        },
        unreadable,
        id: text(id, "job id")?,
        queue: queue.to_string(),
        job,
        state,
        attempts: counters[0],
        recoveries: counters[1],
        deferrals: counters[2],
        last_error: opt_text(last_error, "last_error")?,
        available_at,
        worker,
        envelope,
        progress: opt_int(progress, "progress")?
            .map(|percent| {
                Ok::<_, StoreError>(Progress {
                    percent: u8::try_from(percent.clamp(0, 100)).unwrap_or(100),
                    message: opt_text(progress_message, "progress message")?,
                })
            })
            .transpose()?,
        tags: tags_of_column(opt_text(tags, "tags")?.as_deref()),
    };
    Ok((info, int(seq, "seq")?))
}

/// A failed record, with its `failed_at` in ms for ordering.
pub(super) fn failed_job(value: &Value) -> StoreResult<(FailedJob, i64)> {
    let [
        id,
        queue,
        job,
        envelope,
        error,
        causes,
        attempts,
        failed_at,
        tags,
    ] = fixed::<9>(value, "failed record")?;
    let causes = opt_text(causes, "causes")?.unwrap_or_else(|| "[]".into());
    let failed_at = int(failed_at, "failed_at")?;
    let envelope = self::envelope(envelope)?.0;
    let record = FailedJob {
        id: text(id, "job id")?,
        queue: text(queue, "queue")?,
        job: unreadable::listed(text(job, "job name")?, &envelope, None).0,
        error: text(error, "error")?,
        causes: serde_json::from_str(&causes).unwrap_or_else(|_| vec![causes]),
        attempts: counter(attempts, "attempts")?,
        failed_at: rfc3339_ms(failed_at),
        envelope,
        tags: tags_of_column(opt_text(tags, "tags")?.as_deref()),
    };
    Ok((record, failed_at))
}

/// The queue names after the first `skip` items of a global script's reply.
pub(super) fn queue_names(items: &[Value], skip: usize) -> StoreResult<Vec<String>> {
    items
        .iter()
        .skip(skip)
        .map(|q| text(q, "queue name"))
        .collect()
}

/// The jobs of a list script reply, each with its `seq`.
pub(super) fn listed_jobs(reply: &Value, queue: &str) -> StoreResult<Vec<(JobInfo, i64)>> {
    let items = array(reply, "job list")?;
    let Some((now, jobs)) = items.split_first() else {
        return Err(malformed("job list", reply));
    };
    let now = int(now, "now")?;
    jobs.iter().map(|job| job_info(job, queue, now)).collect()
}

/// The total and the records of a failed-list script reply.
pub(super) fn failed_records(reply: &Value) -> StoreResult<(u64, Vec<(FailedJob, i64)>)> {
    let items = array(reply, "failed list")?;
    let Some((total, records)) = items.split_first() else {
        return Err(malformed("failed list", reply));
    };
    let records = records
        .iter()
        .map(failed_job)
        .collect::<StoreResult<Vec<_>>>()?;
    Ok((count(int(total, "failed total")?), records))
}

/// The batch records of a `batch.lua` reply.
pub(super) fn batch_records(reply: &Value) -> StoreResult<Vec<BatchInfo>> {
    array(reply, "batches")?
        .iter()
        .map(|record| {
            let [
                id,
                name,
                total,
                pending,
                failed,
                failed_ids,
                allow_failures,
                created_at,
                cancelled_at,
                finished_at,
            ] = fixed::<10>(record, "batch")?;
            let total = count(int(total, "batch total")?);
            let pending = count(int(pending, "batch pending")?);
            let failed_ids = text(failed_ids, "failed ids")?;
            Ok(BatchInfo {
                id: text(id, "batch id")?,
                name: text(name, "batch name")?,
                total,
                pending,
                failed: count(int(failed, "batch failed")?),
                progress: BatchInfo::percent(total, pending),
                allow_failures: int(allow_failures, "allow_failures")? != 0,
                failed_ids: serde_json::from_str(&failed_ids).unwrap_or_default(),
                created_at: rfc3339_ms(int(created_at, "created_at")?),
                cancelled_at: opt_int(cancelled_at, "cancelled_at")?.map(rfc3339_ms),
                finished_at: opt_int(finished_at, "finished_at")?.map(rfc3339_ms),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn integers_come_as_replies_or_text() {
        assert_eq!(int(&Value::Int(7), "x").unwrap(), 7);
        assert_eq!(int(&bulk("1700000000123"), "x").unwrap(), 1_700_000_000_123);
        assert_eq!(int(&bulk("1.7e+12"), "x").unwrap(), 1_700_000_000_000);
        assert_eq!(opt_int(&Value::Nil, "x").unwrap(), None);
        for bad in [bulk("x"), bulk("1.5"), Value::Array(vec![])] {
            assert!(
                matches!(int(&bad, "x"), Err(StoreError::Other(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_malformed_reply_is_an_error_and_an_unreadable_job_is_named() {
        let short = Value::Array(vec![bulk("id"), bulk("{}")]);
        assert!(reserved(&short, "q").is_err());
        let mut fields: Vec<Value> = ["id", "{}", "1", "1", "0", "0", "0"]
            .iter()
            .map(|s| bulk(s))
            .collect();
        fields.extend([Value::Nil, Value::Nil, Value::Int(5), bulk("oops")]);
        // The script has claimed it: a time written past Spool is the job's problem, named,
        // not an error that would strand every job of the reply.
        let odd = reserved(&Value::Array(fields.clone()), "q").unwrap();
        assert_eq!(odd.available_at, 5);
        assert!(odd.unreadable.unwrap().contains("'oops'"));
        fields[1] = Value::BulkString(vec![b'{', 0xff]);
        let bytes = reserved(&Value::Array(fields.clone()), "q").unwrap();
        assert!(bytes.unreadable.unwrap().contains("not UTF-8"));
        fields[1] = bulk("{}");
        fields[10] = Value::Int(4);
        let job = reserved(&Value::Array(fields), "q").unwrap();
        assert_eq!((job.token, job.available_at, job.retry_until), (1, 4, None));
    }
}
