//! Searches on SQLite, on the read-only connection: queued jobs ([`search_jobs`]) and completed
//! records ([`completed_jobs`]). Each walks an index from the search's cursor and reads at most
//! the search window of candidates (`LIMIT` on the index walk), then checks the filters no
//! index serves on those rows only.

use rusqlite::{Connection, OptionalExtension, params_from_iter, types::Value};

use super::rows;
use crate::store::{
    CompletedJob, CompletedKey, JobInfo, JobSearch, JobState, Page, Part, SEARCH_WINDOW,
    StoreResult, bad_cursor, merge, uncommented,
};

/// A queued job's place in a listing: available time, then insertion order.
type ListingKey = (i64, i64);

/// Queued jobs matching `search`: on the tag index in id order when it names a tag, else queue
/// by queue in listing order (merged), with the reserved jobs.
pub(super) fn search_jobs(
    conn: &Connection,
    search: &JobSearch,
    now: i64,
) -> StoreResult<Page<JobInfo>> {
    let limit = search.page_size();
    if let Some(tag) = &search.tag {
        return tagged_jobs(conn, search, tag, now, limit);
    }
    let after: ListingKey = match search.after.as_deref() {
        None => (i64::MIN, i64::MIN),
        Some(cursor) => parse_listing(cursor).ok_or_else(|| bad_cursor(cursor))?,
    };
    let mut parts = Vec::new();
    if search.state != Some(JobState::Reserved) {
        let queues = match &search.queue {
            Some(queue) => vec![queue.clone()],
            None => conn
                .prepare_cached(include_str!("sql/search_jobs_queues.sql"))?
                .query_map([], |row| row.get(0))?
                .collect::<Result<_, _>>()?,
        };
        let state = match search.state {
            Some(JobState::Pending) => " AND available_at <= ?",
            Some(JobState::Delayed) => " AND available_at > ?",
            _ => "",
        };
        let source =
            uncommented(include_str!("sql/search_jobs_waiting.sql")).replace("{state}", state);
        for queue in queues {
            let mut args = vec![Value::Text(queue)];
            if !state.is_empty() {
                args.push(Value::Integer(now));
            }
            args.extend([Value::Integer(after.0), Value::Integer(after.1)]);
            parts.push(queued_part(conn, search, &source, args, now, true)?);
        }
    }
    if matches!(search.state, None | Some(JobState::Reserved)) {
        let mut source = uncommented(include_str!("sql/search_jobs_reserved.sql"));
        let mut args = vec![Value::Integer(after.0), Value::Integer(after.1)];
        if let Some(queue) = &search.queue {
            source.push_str(" AND queue = ?");
            args.push(Value::Text(queue.clone()));
        }
        parts.push(queued_part(conn, search, &source, args, now, false)?);
    }
    let (items, next) = merge(parts, limit, |(_, key)| *key);
    Ok(Page {
        items: items.into_iter().map(|(job, _)| job).collect(),
        next: next.map(|(at, seq)| format!("a:{at}:{seq}")),
    })
}

/// One queue's (or the reserved jobs') part of a listing search: the matches among the
/// candidates `source` yields after the cursor, and where it stopped. A `windowed` source takes
/// a `LIMIT` (the window when rows are filtered, else the page).
fn queued_part(
    conn: &Connection,
    search: &JobSearch,
    source: &str,
    source_args: Vec<Value>,
    now: i64,
    windowed: bool,
) -> StoreResult<Part<(JobInfo, ListingKey), ListingKey>> {
    let limit = search.page_size();
    let window = if search.filters() {
        SEARCH_WINDOW
    } else {
        limit
    };
    let mut source_args = source_args;
    if windowed {
        source_args.push(Value::Integer(window as i64));
    }
    let mut sql = uncommented(include_str!("sql/search_jobs.sql")).replace("{source}", source);
    let mut args = vec![Value::Integer(now)];
    args.extend(source_args.iter().cloned());
    let (filters, filter_args) = job_filters(search, windowed, now);
    sql.push_str(&filters);
    args.extend(filter_args);
    sql.push_str(" ORDER BY w.available_at, w.seq LIMIT ?");
    args.push(Value::Integer(limit as i64));
    let items = conn
        .prepare_cached(&sql)?
        .query_map(params_from_iter(args), |row| {
            let job = rows::job_info(row)?;
            Ok((job.clone(), (job.available_at, row.get::<_, i64>(15)?)))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let stop = if items.len() >= limit {
        items.last().map(|(_, key)| *key)
    } else if windowed && search.filters() {
        let end = format!(
            "SELECT available_at, seq FROM ({source}) ORDER BY available_at, seq LIMIT 1 OFFSET ?"
        );
        source_args.push(Value::Integer(window as i64 - 1));
        conn.prepare_cached(&end)?
            .query_row(params_from_iter(source_args), |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()?
    } else {
        None
    };
    Ok(Part { items, stop })
}

/// The `AND ...` filters checked on each candidate job, and their arguments. A `walked` source
/// (one queue's waiting jobs) has applied the queue and state already.
fn job_filters(search: &JobSearch, walked: bool, now: i64) -> (String, Vec<Value>) {
    let mut sql = String::new();
    let mut args = Vec::new();
    if !walked {
        if let Some(queue) = &search.queue {
            sql.push_str(" AND j.queue = ?");
            args.push(Value::Text(queue.clone()));
        }
        match search.state {
            Some(JobState::Pending) => {
                sql.push_str(" AND j.worker_id IS NULL AND j.available_at <= ?");
                args.push(Value::Integer(now));
            }
            Some(JobState::Delayed) => {
                sql.push_str(" AND j.worker_id IS NULL AND j.available_at > ?");
                args.push(Value::Integer(now));
            }
            Some(JobState::Reserved) => sql.push_str(" AND j.worker_id IS NOT NULL"),
            None => {}
        }
    }
    if let Some(job) = &search.job {
        sql.push_str(" AND j.job = ?");
        args.push(Value::Text(job.clone()));
    }
    if let Some(batch) = &search.batch_id {
        sql.push_str(" AND j.batch_id = ?");
        args.push(Value::Text(batch.clone()));
    }
    (sql, args)
}

/// Queued jobs with `tag`, in id order from the cursor, on the tag index.
fn tagged_jobs(
    conn: &Connection,
    search: &JobSearch,
    tag: &str,
    now: i64,
    limit: usize,
) -> StoreResult<Page<JobInfo>> {
    let after = match search.after.as_deref() {
        None => String::new(),
        Some(cursor) => cursor
            .strip_prefix("i:")
            .ok_or_else(|| bad_cursor(cursor))?
            .to_string(),
    };
    let source = uncommented(include_str!("sql/search_jobs_tagged.sql"));
    let source_args = [Value::Text(tag.into()), Value::Text(after)];
    let mut sql = uncommented(include_str!("sql/search_jobs.sql")).replace("{source}", &source);
    let mut args = vec![Value::Integer(now)];
    args.extend(source_args.iter().cloned());
    args.push(Value::Integer(SEARCH_WINDOW as i64));
    let (filters, filter_args) = job_filters(search, false, now);
    sql.push_str(&filters);
    args.extend(filter_args);
    sql.push_str(" ORDER BY w.pos LIMIT ?");
    args.push(Value::Integer(limit as i64));
    let items = conn
        .prepare_cached(&sql)?
        .query_map(params_from_iter(args), rows::job_info)?
        .collect::<Result<Vec<_>, _>>()?;
    let next = if items.len() >= limit {
        items.last().map(|j| j.id.clone())
    } else {
        let end = format!("SELECT pos FROM ({source}) ORDER BY pos LIMIT 1 OFFSET ?");
        let mut end_args = source_args.to_vec();
        end_args.push(Value::Integer(SEARCH_WINDOW as i64));
        end_args.push(Value::Integer(SEARCH_WINDOW as i64 - 1));
        conn.prepare_cached(&end)?
            .query_row(params_from_iter(end_args), |row| row.get::<_, String>(0))
            .optional()?
    };
    Ok(Page {
        items,
        next: next.map(|id| format!("i:{id}")),
    })
}

/// Reads a listing cursor, `a:<available_at>:<seq>`.
fn parse_listing(cursor: &str) -> Option<ListingKey> {
    let (at, seq) = cursor.strip_prefix("a:")?.split_once(':')?;
    Some((at.parse().ok()?, seq.parse().ok()?))
}

/// Completed records matching `search`, newest first: on the tag index when it names a tag,
/// else on the completion-time index; the queue, job name and batch are checked on each
/// candidate, within the search window.
pub(super) fn completed_jobs(
    conn: &Connection,
    search: &JobSearch,
) -> StoreResult<Page<CompletedJob>> {
    let limit = search.page_size();
    let after = CompletedKey::parse(search.after.as_deref())?.unwrap_or(CompletedKey {
        at: i64::MAX,
        id: String::new(),
    });
    let mut source_args = Vec::new();
    let source = match &search.tag {
        Some(tag) => {
            source_args.push(Value::Text(tag.clone()));
            uncommented(include_str!("sql/completed_jobs_tagged.sql"))
        }
        None => uncommented(include_str!("sql/completed_jobs_all.sql")),
    };
    source_args.extend([Value::Integer(after.at), Value::Text(after.id)]);
    let filtered = search.queue.is_some() || search.job.is_some() || search.batch_id.is_some();
    let window = if filtered { SEARCH_WINDOW } else { limit };
    source_args.push(Value::Integer(window as i64));
    let mut sql = uncommented(include_str!("sql/completed_jobs.sql")).replace("{source}", &source);
    let mut args = source_args.clone();
    for (column, value) in [
        ("queue", &search.queue),
        ("job", &search.job),
        ("batch_id", &search.batch_id),
    ] {
        if let Some(value) = value {
            sql.push_str(&format!(" AND c.{column} = ?"));
            args.push(Value::Text(value.clone()));
        }
    }
    sql.push_str(" ORDER BY w.completed_at DESC, w.id DESC LIMIT ?");
    args.push(Value::Integer(limit as i64));
    let items = conn
        .prepare_cached(&sql)?
        .query_map(params_from_iter(args), rows::completed_job)?
        .collect::<Result<Vec<_>, _>>()?;
    let next = if items.len() >= limit {
        items.last().map(CompletedKey::of)
    } else if filtered {
        let end = format!(
            "SELECT completed_at, id FROM ({source}) ORDER BY completed_at DESC, id DESC LIMIT 1 OFFSET ?"
        );
        source_args.push(Value::Integer(window as i64 - 1));
        conn.prepare_cached(&end)?
            .query_row(params_from_iter(source_args), |row| {
                Ok(CompletedKey {
                    at: row.get(0)?,
                    id: row.get(1)?,
                })
            })
            .optional()?
    } else {
        None
    };
    Ok(Page {
        items,
        next: next.map(|key| key.cursor()),
    })
}
