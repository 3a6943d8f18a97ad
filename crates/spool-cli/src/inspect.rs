//! `spool status`, `spool jobs`, `spool job ID`, `spool size`.

use std::{process::ExitCode, sync::Arc, time::Duration};

use clap::Args;
use serde::Serialize;

use super::{CliError, output};
use spool::{
    Store, format_duration,
    store::{JobFilter, JobInfo, JobState, QueueStats, Stats},
};

#[derive(Debug, Args)]
pub(crate) struct JsonFlag {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// The stats with the default queue always listed, so scripts can rely on it.
async fn stats_with_default(store: &dyn Store) -> Result<Stats, CliError> {
    let control = store.control().await?;
    let mut stats = store.stats().await?.with_control(&control);
    if !stats.queues.iter().any(|q| q.name == spool::DEFAULT_QUEUE) {
        stats.queues.push(QueueStats {
            name: spool::DEFAULT_QUEUE.into(),
            ..Default::default()
        });
        stats.queues.sort_by(|a, b| a.name.cmp(&b.name));
    }
    Ok(stats)
}

pub(crate) async fn status(store: Arc<dyn Store>, a: JsonFlag) -> Result<ExitCode, CliError> {
    let stats = stats_with_default(store.as_ref()).await?;
    let supervisors = crate::supervise::registry::live(store.as_ref()).await?;
    let stuck = crate::stuck::find(store.as_ref(), &stats).await?;
    if a.json {
        let mut json = serde_json::to_value(&stats).expect("plain data serializes");
        json["supervisors"] = serde_json::to_value(&supervisors).expect("plain data serializes");
        json["stuck"] = serde_json::to_value(&stuck).expect("plain data serializes");
        output::json(&json);
        return Ok(ExitCode::SUCCESS);
    }
    // S-DISP-2: a job on a queue no worker serves waits forever, silently; say so.
    let consumers = |queue: &str| {
        stats
            .workers
            .iter()
            .filter(|w| w.queues.iter().any(|q| q == queue))
            .count()
    };
    output::table_of(
        &[
            "QUEUE",
            "PENDING",
            "DELAYED",
            "RESERVED",
            "OLDEST READY",
            "WORKERS",
            "PAUSED",
            "",
        ],
        &stats.queues,
        |q| {
            let workers = consumers(&q.name);
            let note = if workers == 0 && q.pending + q.delayed > 0 && !q.paused {
                "no consumer"
            } else {
                ""
            };
            vec![
                q.name.clone(),
                q.pending.to_string(),
                q.delayed.to_string(),
                q.reserved.to_string(),
                if q.pending == 0 {
                    "-".to_string()
                } else {
                    format_duration(Duration::from_millis(q.oldest_ready_age_ms))
                },
                workers.to_string(),
                if q.paused { "paused" } else { "-" }.to_string(),
                note.to_string(),
            ]
        },
    );
    println!(
        "\nprocessed: {}   failed: {}   store: {}",
        stats.processed,
        stats.failed,
        store.backend()
    );
    if stats.workers.is_empty() {
        println!("workers: none running");
    } else {
        println!("workers:");
        output::table_of(
            &["ID", "HOST", "PID", "QUEUES", "BUSY", "LAST SEEN", ""],
            &stats.workers,
            |w| {
                vec![
                    w.id.clone(),
                    w.host.clone(),
                    w.pid.to_string(),
                    w.queues.join(","),
                    w.busy.len().to_string(),
                    w.last_seen_ms.map_or("-".to_string(), |ms| {
                        format!("{} ago", format_duration(Duration::from_millis(ms)))
                    }),
                    // Heartbeats come every third of the lease: past half of it the process
                    // has most likely died; its jobs return when the lease runs out.
                    if w.is_silent() { "silent" } else { "" }.to_string(),
                ]
            },
        );
    }
    for expired in &stuck.expired_workers {
        println!(
            "stuck: worker {} (lease expired) still holds {} job(s); the reaper returns them within a third of a lease",
            expired.worker, expired.jobs
        );
    }
    for overdue in &stuck.past_timeout {
        println!(
            "stuck: job {} ({} on `{}`) has run {} against a timeout of {}{}",
            overdue.id,
            overdue.job,
            overdue.queue,
            format_duration(Duration::from_millis(overdue.running_for_ms)),
            format_duration(Duration::from_millis(overdue.timeout_ms)),
            overdue
                .worker
                .as_ref()
                .map_or(String::new(), |w| format!(" on worker {w}"))
        );
    }
    if !supervisors.is_empty() {
        println!("supervisors:");
        let rows: Vec<(&str, &str, u32, &crate::supervise::registry::PoolStatus)> = supervisors
            .iter()
            .flat_map(|s| {
                s.pools
                    .iter()
                    .map(move |p| (s.id.as_str(), s.host.as_str(), s.pid, p))
            })
            .collect();
        output::table_of(
            &[
                "ID",
                "HOST",
                "PID",
                "POOL",
                "QUEUES",
                "PROCESSES",
                "MIN",
                "MAX",
                "BALANCE",
                "STATE",
            ],
            &rows,
            |(id, host, pid, p)| {
                vec![
                    id.to_string(),
                    host.to_string(),
                    pid.to_string(),
                    p.name.clone(),
                    p.queues.join(","),
                    p.processes.to_string(),
                    p.min.to_string(),
                    p.max.to_string(),
                    p.balance.clone(),
                    match &p.error {
                        Some(why) => format!("{}: {why}", p.state),
                        None => p.state.clone(),
                    },
                ]
            },
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub(crate) struct JobsArgs {
    /// Only this queue.
    #[arg(long)]
    queue: Option<String>,
    /// Only jobs in this state: pending, delayed or reserved.
    #[arg(long)]
    state: Option<JobState>,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Print JSON.
    #[arg(long)]
    json: bool,
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
    let filter = JobFilter {
        queue: a.queue,
        state: a.state,
        limit: Some(a.limit),
    };
    let jobs = store.jobs(&filter).await?;
    if a.json {
        #[derive(Serialize)]
        struct Doc<'a> {
            jobs: Vec<JobView<'a>>,
        }
        output::json(&Doc {
            jobs: jobs.iter().map(|j| view(j, false)).collect(),
        });
        return Ok(ExitCode::SUCCESS);
    }
    if a.state == Some(JobState::Reserved) {
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
        &["ID", "QUEUE", "JOB", "STATE", "ATTEMPTS", "LAST ERROR"],
        &jobs,
        |j| {
            vec![
                j.id.clone(),
                j.queue.clone(),
                j.job.clone(),
                state_name(j.state).into(),
                j.attempts.to_string(),
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
            // A completed job that stored a result is kept for the result retention time.
            if let Some(done) = store.job_result(&a.id).await.ok().flatten() {
                return Ok(completed(&done, a.json));
            }
        }
        eprintln!(
            "error: job `{}` not found: it is not queued, not failed (`spool failed show {}`), and \
             completed jobs are kept only with a result",
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
fn completed(done: &spool::store::CompletedJob, json: bool) -> ExitCode {
    if json {
        #[derive(Serialize)]
        struct Doc<'a> {
            state: &'static str,
            #[serde(flatten)]
            done: &'a spool::store::CompletedJob,
        }
        output::json(&Doc {
            state: "completed",
            done,
        });
        return ExitCode::SUCCESS;
    }
    let mut rows = vec![
        ("id", done.id.clone()),
        ("job", done.job.clone()),
        ("queue", done.queue.clone()),
        ("state", "completed".to_string()),
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

#[derive(Debug, Args)]
pub(crate) struct SizeArgs {
    /// Queues to count (all if none).
    queues: Vec<String>,
}

pub(crate) async fn size(store: Arc<dyn Store>, a: SizeArgs) -> Result<ExitCode, CliError> {
    let stats = store.stats().await?;
    let size = |name: &str| {
        stats
            .queues
            .iter()
            .find(|q| q.name == name)
            .map_or(0, |q| q.pending + q.delayed + q.reserved)
    };
    let names: Vec<String> = if a.queues.is_empty() {
        stats.queues.iter().map(|q| q.name.clone()).collect()
    } else {
        a.queues
    };
    for name in names {
        println!("{name} {}", size(&name));
    }
    Ok(ExitCode::SUCCESS)
}
