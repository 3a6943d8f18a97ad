//! `spool jobs` (queued jobs, or the completed history, searched by tag, job name and batch
//! a page at a time) and `spool job ID` (one job, queued or completed).

use std::{process::ExitCode, sync::Arc, time::Duration};

use clap::Args;
use serde::Serialize;

use super::{CliError, output};
use spool::{
    Store, format_duration,
    store::{CompletedJob, JobFilter, JobInfo, JobSearch, JobState, Page},
};

/// What `spool jobs --state` lists: queued jobs in one state, or the completed history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listed {
    /// Queued jobs in this state.
    Queued(JobState),
    /// Completed jobs' records.
    Completed,
}

impl std::str::FromStr for Listed {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "completed" => Ok(Listed::Completed),
            other => other.parse().map(Listed::Queued).map_err(|_| {
                format!("unknown state `{other}`: use pending, delayed, reserved or completed")
            }),
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct JobsArgs {
    /// Only this queue.
    #[arg(long)]
    queue: Option<String>,
    /// Only jobs in this state: pending, delayed or reserved; or `completed` for the records
    /// of completed jobs (kept for the workers' history retention, 1h by default), newest
    /// first.
    #[arg(long)]
    state: Option<Listed>,
    /// Only jobs with this tag.
    #[arg(long)]
    tag: Option<String>,
    /// Only jobs of this name.
    #[arg(long)]
    job: Option<String>,
    /// Only jobs of this batch.
    #[arg(long)]
    batch: Option<String>,
    /// Go on from where a previous listing stopped (the `next` it printed).
    #[arg(long, value_name = "CURSOR")]
    after: Option<String>,
    /// At most this many (a search: at most 500).
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

impl JobsArgs {
    /// Whether this listing is a search (a page with a cursor) rather than the plain listing.
    fn searches(&self) -> bool {
        self.tag.is_some()
            || self.job.is_some()
            || self.batch.is_some()
            || self.after.is_some()
            || self.state == Some(Listed::Completed)
    }

    fn search(&self) -> JobSearch {
        JobSearch {
            queue: self.queue.clone(),
            state: match self.state {
                Some(Listed::Queued(state)) => Some(state),
                _ => None,
            },
            job: self.job.clone(),
            tag: self.tag.clone(),
            batch_id: self.batch.clone(),
            after: self.after.clone(),
            limit: Some(self.limit),
        }
    }
}

/// A job as `spool jobs --json` and `spool job ID --json` print it.
#[derive(Serialize)]
struct JobView<'a> {
    id: &'a str,
    queue: &'a str,
    job: &'a str,
    state: JobState,
    attempts: u32,
    recoveries: u32,
    deferrals: u32,
    last_error: Option<&'a str>,
    available_at: String,
    worker: Option<&'a str>,
    /// When its worker reserved it (RFC 3339), while reserved.
    #[serde(skip_serializing_if = "Option::is_none")]
    reserved_at: Option<String>,
    /// How long it has run, while reserved.
    #[serde(skip_serializing_if = "Option::is_none")]
    running_for_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    progress: Option<&'a spool::store::Progress>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<serde_json::Value>,
    /// Why a worker cannot run the job as stored (written past Spool), if it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    unreadable: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    tags: &'a [String],
}

fn view(j: &JobInfo, with_payload: bool) -> JobView<'_> {
    let payload =
        with_payload.then(|| output::payload_of(&j.envelope).unwrap_or(serde_json::Value::Null));
    JobView {
        id: &j.id,
        queue: &j.queue,
        job: &j.job,
        state: j.state,
        attempts: j.attempts,
        recoveries: j.recoveries,
        deferrals: j.deferrals,
        last_error: j.last_error.as_deref(),
        available_at: spool::store::rfc3339_ms(j.available_at),
        worker: j.worker.as_deref(),
        reserved_at: j.reserved_at.map(spool::store::rfc3339_ms),
        running_for_ms: j.reserved_at.map(running_for_ms),
        progress: j.progress.as_ref(),
        payload,
        unreadable: j.unreadable.as_deref(),
        tags: &j.tags,
    }
}

/// Milliseconds since `reserved_at` by this machine's clock (zero if it is behind the store's).
fn running_for_ms(reserved_at: i64) -> u64 {
    u64::try_from(spool::now_ms().saturating_sub(reserved_at)).unwrap_or(0)
}

fn state_name(s: JobState) -> &'static str {
    match s {
        JobState::Pending => "pending",
        JobState::Delayed => "delayed",
        JobState::Reserved => "reserved",
    }
}

pub(crate) async fn jobs(store: Arc<dyn Store>, a: JobsArgs) -> Result<ExitCode, CliError> {
    if a.state == Some(Listed::Completed) {
        let page = store.completed_jobs(&a.search()).await?;
        print_completed(&page, a.json);
        return Ok(ExitCode::SUCCESS);
    }
    let (jobs, next) = if a.searches() {
        let page = store.search_jobs(&a.search()).await?;
        (page.items, Some(page.next))
    } else {
        let filter = JobFilter {
            queue: a.queue.clone(),
            state: match a.state {
                Some(Listed::Queued(state)) => Some(state),
                _ => None,
            },
            limit: Some(a.limit),
        };
        (store.jobs(&filter).await?, None)
    };
    if a.json {
        #[derive(Serialize)]
        struct Doc<'a> {
            jobs: Vec<JobView<'a>>,
            /// A search's cursor (`null` at the end); absent for the plain listing.
            #[serde(skip_serializing_if = "Option::is_none")]
            next: Option<Option<&'a str>>,
        }
        output::json(&Doc {
            jobs: jobs.iter().map(|j| view(j, false)).collect(),
            next: next.as_ref().map(|n| n.as_deref()),
        });
        return Ok(ExitCode::SUCCESS);
    }
    print_next(
        next.as_ref().and_then(|n| n.as_deref()),
        jobs.is_empty(),
        a.searches(),
    );
    if a.state == Some(Listed::Queued(JobState::Reserved)) {
        // Hunting stuck jobs: who holds each, since when, for how long.
        output::table_of(
            &[
                "ID",
                "QUEUE",
                "JOB",
                "WORKER",
                "RESERVED AT",
                "RUNNING FOR",
                "ATTEMPTS",
            ],
            &jobs,
            |j| {
                vec![
                    j.id.clone(),
                    j.queue.clone(),
                    j.job.clone(),
                    j.worker.clone().unwrap_or_else(|| "-".into()),
                    j.reserved_at
                        .map_or_else(|| "-".into(), spool::store::rfc3339_ms),
                    j.reserved_at.map_or_else(
                        || "-".into(),
                        |at| format_duration(Duration::from_millis(running_for_ms(at))),
                    ),
                    j.attempts.to_string(),
                ]
            },
        );
        return Ok(ExitCode::SUCCESS);
    }
    output::table_of(
        &[
            "ID",
            "QUEUE",
            "JOB",
            "STATE",
            "ATTEMPTS",
            "TAGS",
            "LAST ERROR",
        ],
        &jobs,
        |j| {
            vec![
                j.id.clone(),
                j.queue.clone(),
                j.job.clone(),
                state_name(j.state).into(),
                j.attempts.to_string(),
                tags_cell(&j.tags),
                // A row a worker cannot read is flagged where the eye looks for trouble.
                match (&j.unreadable, &j.last_error) {
                    (Some(why), _) => output::one_line(&format!("cannot run: {why}"), 50),
                    (None, Some(e)) => output::one_line(e, 50),
                    (None, None) => String::new(),
                },
            ]
        },
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub(crate) struct JobArgs {
    /// The job's id.
    id: String,
    /// Delete it (if no worker holds it).
    #[arg(long, conflicts_with = "run_now")]
    delete: bool,
    /// Make a delayed or retrying job available now.
    #[arg(long)]
    run_now: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn job(store: Arc<dyn Store>, a: JobArgs) -> Result<ExitCode, CliError> {
    let Some(info) = store.job(&a.id).await? else {
        if !a.delete && !a.run_now {
            // A completed job's record is kept for the history retention (its result, if it
            // stored one, for the result retention).
            if let Some(done) = store.job_result(&a.id).await.ok().flatten() {
                return Ok(completed(&done, a.json));
            }
        }
        eprintln!(
            "error: job `{}` not found: it is not queued, not failed (`spool failed show {}`), and \
             not completed within the workers' history retention (1h unless configured)",
            a.id, a.id
        );
        return Ok(ExitCode::FAILURE);
    };
    if a.delete {
        if store.delete_job(&a.id).await? {
            println!("deleted job {}", a.id);
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!(
            "error: job {} is held by a worker; it can be deleted once released",
            a.id
        );
        return Ok(ExitCode::FAILURE);
    }
    if a.run_now {
        if store.run_job_now(&a.id).await? {
            println!("job {} is available now", a.id);
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!(
            "error: job {} is {}, not delayed",
            a.id,
            state_name(info.state)
        );
        return Ok(ExitCode::FAILURE);
    }
    let v = view(&info, true);
    if a.json {
        output::json(&v);
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![
        ("id", v.id.to_string()),
        ("job", v.job.to_string()),
        ("queue", v.queue.to_string()),
        ("state", state_name(v.state).to_string()),
        ("attempts", v.attempts.to_string()),
        ("recoveries", v.recoveries.to_string()),
        ("deferrals", v.deferrals.to_string()),
        ("available at", v.available_at.to_string()),
        ("worker", v.worker.unwrap_or("-").to_string()),
        (
            "reserved at",
            v.reserved_at.clone().unwrap_or_else(|| "-".into()),
        ),
        (
            "running for",
            v.running_for_ms.map_or_else(
                || "-".into(),
                |ms| format_duration(Duration::from_millis(ms)),
            ),
        ),
        ("last error", v.last_error.unwrap_or("-").to_string()),
        ("tags", tags_or_dash(v.tags)),
    ];
    if let Some(why) = v.unreadable {
        rows.push(("cannot run", why.to_string()));
    }
    if let Some(p) = v.progress {
        let message = p.message.as_deref().unwrap_or("");
        rows.push(("progress", format!("{}% {message}", p.percent)));
    }
    rows.push(("payload", v.payload.unwrap_or_default().to_string()));
    output::fields(&rows);
    Ok(ExitCode::SUCCESS)
}

/// Prints a completed job's kept record.
fn completed(done: &CompletedJob, json: bool) -> ExitCode {
    if json {
        #[derive(Serialize)]
        struct Doc<'a> {
            state: &'static str,
            #[serde(flatten)]
            done: &'a CompletedJob,
        }
        output::json(&Doc {
            state: "completed",
            done,
        });
        return ExitCode::SUCCESS;
    }
    let dash = || "-".to_string();
    let mut rows = vec![
        ("id", done.id.clone()),
        ("job", done.job.clone()),
        ("queue", done.queue.clone()),
        ("state", "completed".to_string()),
        ("tags", tags_or_dash(&done.tags)),
        ("attempts", done.attempts.to_string()),
        ("enqueued at", done.enqueued_at.clone().unwrap_or_else(dash)),
        ("started at", done.started_at.clone().unwrap_or_else(dash)),
        ("completed at", done.completed_at.clone()),
    ];
    if let Some(batch) = &done.batch_id {
        rows.push(("batch", batch.clone()));
    }
    let result = done.result.as_ref().map(|r| r.to_string());
    rows.push(("result", result.unwrap_or_else(|| "-".to_string())));
    output::fields(&rows);
    ExitCode::SUCCESS
}

/// Prints a page of the completed history.
fn print_completed(page: &Page<CompletedJob>, json: bool) {
    if json {
        #[derive(Serialize)]
        struct Doc<'a> {
            jobs: &'a [CompletedJob],
            next: Option<&'a str>,
        }
        output::json(&Doc {
            jobs: &page.items,
            next: page.next.as_deref(),
        });
        return;
    }
    print_next(page.next.as_deref(), page.items.is_empty(), true);
    output::table_of(
        &[
            "ID",
            "QUEUE",
            "JOB",
            "TAGS",
            "ATTEMPTS",
            "COMPLETED AT",
            "RESULT",
        ],
        &page.items,
        |c| {
            vec![
                c.id.clone(),
                c.queue.clone(),
                c.job.clone(),
                tags_cell(&c.tags),
                c.attempts.to_string(),
                c.completed_at.clone(),
                if c.has_result { "kept" } else { "-" }.to_string(),
            ]
        },
    );
}

/// On stderr, so a table piped elsewhere stays a table: where a search goes on from, or why a
/// page came back empty.
fn print_next(next: Option<&str>, empty: bool, searched: bool) {
    match next {
        Some(next) if empty => {
            eprintln!("nothing found in the part searched; search on with --after {next}")
        }
        Some(next) => eprintln!("more: --after {next}"),
        None if empty && searched => eprintln!("nothing found"),
        None => {}
    }
}

/// Tags as a table cell.
fn tags_cell(tags: &[String]) -> String {
    output::one_line(&tags.join(","), 40)
}

/// Tags as a field, `-` for none.
fn tags_or_dash(tags: &[String]) -> String {
    if tags.is_empty() {
        "-".to_string()
    } else {
        tags.join(", ")
    }
}
