//! Searches on the SQL server stores, written once: which statements a search runs, in which
//! order, and how their rows become a page. A position is compared as `a >= ? AND (a, b) > (?,
//! ?)`: the first term is what lets every server walk the index from there. Each store gives its statement texts
//! ([`Templates`], with `?` for every argument) and runs them ([`Fetch`]); the rules are those
//! of `store/search.rs`: walk an index from the cursor, read at most the search window of
//! candidates, check the filters no index serves on those rows only.

use async_trait::async_trait;

use super::rows::{self, ServerRow};
use crate::store::{
    CompletedJob, CompletedKey, JobInfo, JobSearch, JobState, Page, Part, SEARCH_WINDOW,
    StoreResult, bad_cursor, merge, uncommented,
};

/// An argument of a search statement.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    /// Text.
    Text(String),
    /// A BIGINT.
    Int(i64),
}

/// A statement with `?` for each argument, in order.
#[derive(Debug, Clone)]
pub(crate) struct Statement {
    /// The text.
    pub(crate) text: String,
    /// The arguments, in the order of their `?`.
    pub(crate) args: Vec<Arg>,
}

/// Decodes one row of a search statement.
pub(crate) type Decode<T> = fn(&dyn ServerRow) -> Result<T, sqlx::Error>;

/// Runs search statements on one store.
#[async_trait]
pub(crate) trait Fetch: Send {
    /// Every row `statement` returns, decoded by `decode`.
    async fn fetch<T: Send + 'static>(
        &mut self,
        statement: Statement,
        decode: Decode<T>,
    ) -> StoreResult<Vec<T>>;
}

/// A store's statements for searches (see the SQLite store's `sql/search_*.sql` and
/// `sql/completed_jobs*.sql` for what each one is).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Templates {
    /// The job columns around `{source}`, ending in a `WHERE` clause.
    pub(crate) jobs: &'static str,
    /// One queue's waiting jobs after a position, with `{state}`.
    pub(crate) waiting: &'static str,
    /// The reserved jobs after a position.
    pub(crate) reserved: &'static str,
    /// The queued jobs with a tag after an id.
    pub(crate) tagged: &'static str,
    /// The queues with waiting jobs.
    pub(crate) queues: &'static str,
    /// The completed record columns around `{source}`, ending in a `WHERE` clause.
    pub(crate) completed: &'static str,
    /// The completed records older than a position.
    pub(crate) completed_all: &'static str,
    /// The completed records with a tag older than a position.
    pub(crate) completed_tagged: &'static str,
    /// The `WITH` clause that makes the store's clock readable as `clock.ms` (a source reads
    /// it as `(SELECT ms FROM clock)`).
    pub(crate) clock: &'static str,
}

impl Templates {
    /// The window's last candidate of `source`: `SELECT <columns> FROM (<source>) AS s ORDER
    /// BY <order> LIMIT 1 OFFSET ?`, reading the clock where the source does.
    fn window_end(&self, source: &str, columns: &str, order: &str) -> String {
        format!(
            "{} SELECT {columns} FROM ({source}) AS s ORDER BY {order} LIMIT 1 OFFSET ?",
            self.clock
        )
    }
}

/// A queued job's place in a listing: available time, then insertion order.
type ListingKey = (i64, i64);

fn int(row: &dyn ServerRow, i: usize) -> Result<i64, sqlx::Error> {
    row.int(i)
}

/// Queued jobs matching `search` (see [`AdminStore::search_jobs`]): on the tag index in id
/// order when it names a tag, else queue by queue in listing order (merged), with the reserved
/// jobs.
///
/// [`AdminStore::search_jobs`]: crate::store::AdminStore::search_jobs
pub(crate) async fn search_jobs(
    fetch: &mut impl Fetch,
    sql: &Templates,
    search: &JobSearch,
) -> StoreResult<Page<JobInfo>> {
    let limit = search.page_size();
    if let Some(tag) = &search.tag {
        return tagged_jobs(fetch, sql, search, tag, limit).await;
    }
    let after: ListingKey = match search.after.as_deref() {
        None => (i64::MIN, i64::MIN),
        Some(cursor) => parse_listing(cursor).ok_or_else(|| bad_cursor(cursor))?,
    };
    let mut parts = Vec::new();
    if search.state != Some(JobState::Reserved) {
        let queues = match &search.queue {
            Some(queue) => vec![queue.clone()],
            None => {
                let statement = Statement {
                    text: uncommented(sql.queues),
                    args: Vec::new(),
                };
                fetch.fetch(statement, |row| row.text(0)).await?
            }
        };
        let state = match search.state {
            Some(JobState::Pending) => " AND available_at <= (SELECT ms FROM clock)",
            Some(JobState::Delayed) => " AND available_at > (SELECT ms FROM clock)",
            _ => "",
        };
        let source = uncommented(sql.waiting).replace("{state}", state);
        for queue in queues {
            let args = vec![
                Arg::Text(queue),
                Arg::Int(after.0),
                Arg::Int(after.0),
                Arg::Int(after.1),
            ];
            parts.push(queued_part(fetch, sql, search, &source, args, true).await?);
        }
    }
    if matches!(search.state, None | Some(JobState::Reserved)) {
        let mut source = uncommented(sql.reserved);
        let mut args = vec![Arg::Int(after.0), Arg::Int(after.0), Arg::Int(after.1)];
        if let Some(queue) = &search.queue {
            source.push_str(" AND queue = ?");
            args.push(Arg::Text(queue.clone()));
        }
        parts.push(queued_part(fetch, sql, search, &source, args, false).await?);
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
async fn queued_part(
    fetch: &mut impl Fetch,
    sql: &Templates,
    search: &JobSearch,
    source: &str,
    mut source_args: Vec<Arg>,
    windowed: bool,
) -> StoreResult<Part<(JobInfo, ListingKey), ListingKey>> {
    let limit = search.page_size();
    let window = if search.filters() {
        SEARCH_WINDOW
    } else {
        limit
    };
    if windowed {
        source_args.push(Arg::Int(window as i64));
    }
    let mut text = uncommented(sql.jobs).replace("{source}", source);
    let mut args = source_args.clone();
    push_job_filters(&mut text, &mut args, search, windowed);
    text.push_str(" ORDER BY w.available_at, w.seq LIMIT ?");
    args.push(Arg::Int(limit as i64));
    let items = fetch
        .fetch(Statement { text, args }, |row| {
            let job = rows::job_info(row)?;
            let key = (job.available_at, row.int(15)?);
            Ok((job, key))
        })
        .await?;
    let stop = if items.len() >= limit {
        items.last().map(|(_, key)| *key)
    } else if windowed && search.filters() {
        source_args.push(Arg::Int(window as i64 - 1));
        let text = sql.window_end(source, "s.available_at, s.seq", "s.available_at, s.seq");
        let end = fetch
            .fetch(
                Statement {
                    text,
                    args: source_args,
                },
                |row| Ok((row.int(0)?, row.int(1)?)),
            )
            .await?;
        end.into_iter().next()
    } else {
        None
    };
    Ok(Part { items, stop })
}

/// Appends the filters checked on each candidate job. A `walked` source (one queue's waiting
/// jobs) has applied the queue and state already.
fn push_job_filters(text: &mut String, args: &mut Vec<Arg>, search: &JobSearch, walked: bool) {
    if !walked {
        if let Some(queue) = &search.queue {
            text.push_str(" AND j.queue = ?");
            args.push(Arg::Text(queue.clone()));
        }
        text.push_str(match search.state {
            Some(JobState::Pending) => " AND j.worker_id IS NULL AND j.available_at <= clock.ms",
            Some(JobState::Delayed) => " AND j.worker_id IS NULL AND j.available_at > clock.ms",
            Some(JobState::Reserved) => " AND j.worker_id IS NOT NULL",
            None => "",
        });
    }
    if let Some(job) = &search.job {
        text.push_str(" AND j.job = ?");
        args.push(Arg::Text(job.clone()));
    }
    if let Some(batch) = &search.batch_id {
        text.push_str(" AND j.batch_id = ?");
        args.push(Arg::Text(batch.clone()));
    }
}

/// Queued jobs with `tag`, in id order from the cursor, on the tag index.
async fn tagged_jobs(
    fetch: &mut impl Fetch,
    sql: &Templates,
    search: &JobSearch,
    tag: &str,
    limit: usize,
) -> StoreResult<Page<JobInfo>> {
    let after = match search.after.as_deref() {
        None => String::new(),
        Some(cursor) => cursor
            .strip_prefix("i:")
            .ok_or_else(|| bad_cursor(cursor))?
            .to_string(),
    };
    let source_args = vec![
        Arg::Text(tag.into()),
        Arg::Text(after),
        Arg::Int(SEARCH_WINDOW as i64),
    ];
    let tagged = uncommented(sql.tagged);
    let mut text = uncommented(sql.jobs).replace("{source}", &tagged);
    let mut args = source_args.clone();
    push_job_filters(&mut text, &mut args, search, false);
    text.push_str(" ORDER BY w.pos LIMIT ?");
    args.push(Arg::Int(limit as i64));
    let items = fetch
        .fetch(Statement { text, args }, |row| rows::job_info(row))
        .await?;
    let next = if items.len() >= limit {
        items.last().map(|j| j.id.clone())
    } else {
        let mut end_args = source_args;
        end_args.push(Arg::Int(SEARCH_WINDOW as i64 - 1));
        let text = sql.window_end(&tagged, "s.pos", "s.pos");
        let end = fetch
            .fetch(
                Statement {
                    text,
                    args: end_args,
                },
                |row| row.text(0),
            )
            .await?;
        end.into_iter().next()
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

/// Completed records matching `search` (see [`AdminStore::completed_jobs`]), newest first:
/// on the tag index when it names a tag, else on the completion-time index; the queue, job
/// name and batch are checked on each candidate, within the search window.
///
/// [`AdminStore::completed_jobs`]: crate::store::AdminStore::completed_jobs
pub(crate) async fn completed_jobs(
    fetch: &mut impl Fetch,
    sql: &Templates,
    search: &JobSearch,
) -> StoreResult<Page<CompletedJob>> {
    let limit = search.page_size();
    let after = CompletedKey::parse(search.after.as_deref())?.unwrap_or(CompletedKey {
        at: i64::MAX,
        id: String::new(),
    });
    let mut source_args = Vec::new();
    let source = uncommented(match &search.tag {
        Some(tag) => {
            source_args.push(Arg::Text(tag.clone()));
            sql.completed_tagged
        }
        None => sql.completed_all,
    });
    source_args.extend([
        Arg::Int(after.at),
        Arg::Int(after.at),
        Arg::Text(after.id.clone()),
    ]);
    let filtered = search.queue.is_some() || search.job.is_some() || search.batch_id.is_some();
    let window = if filtered { SEARCH_WINDOW } else { limit };
    source_args.push(Arg::Int(window as i64));
    let mut text = uncommented(sql.completed).replace("{source}", &source);
    let mut args = source_args.clone();
    for (column, value) in [
        ("queue", &search.queue),
        ("job", &search.job),
        ("batch_id", &search.batch_id),
    ] {
        if let Some(value) = value {
            text.push_str(&format!(" AND c.{column} = ?"));
            args.push(Arg::Text(value.clone()));
        }
    }
    text.push_str(" ORDER BY w.completed_at DESC, w.id DESC LIMIT ?");
    args.push(Arg::Int(limit as i64));
    let items = fetch
        .fetch(Statement { text, args }, |row| rows::completed_job(row))
        .await?;
    let next = if items.len() >= limit {
        items.last().map(CompletedKey::of)
    } else if filtered {
        source_args.push(Arg::Int(window as i64 - 1));
        let text = source_end(&source);
        let end = fetch
            .fetch(
                Statement {
                    text,
                    args: source_args,
                },
                |row| {
                    Ok(CompletedKey {
                        at: int(row, 0)?,
                        id: row.text(1)?,
                    })
                },
            )
            .await?;
        end.into_iter().next()
    } else {
        None
    };
    Ok(Page {
        items,
        next: next.map(|key| key.cursor()),
    })
}

/// The window's last candidate of a completed-record source (which reads no clock).
fn source_end(source: &str) -> String {
    format!(
        "SELECT s.completed_at, s.id FROM ({source}) AS s \
         ORDER BY s.completed_at DESC, s.id DESC LIMIT 1 OFFSET ?"
    )
}
