//! The failed store: `spool failed [show ID]`, `retry`, `forget`, `flush`, `prune-failed`.

use std::{process::ExitCode, sync::Arc, time::Duration};

use clap::{Args, Subcommand};
use serde::Serialize;

use super::{CliError, output};
use spool::{
    Store,
    store::{FailedFilter, FailedJob, RetrySelector},
};

#[derive(Debug, Args)]
pub(crate) struct FailedArgs {
    #[command(subcommand)]
    action: Option<FailedAction>,
    /// Only this queue.
    #[arg(long)]
    queue: Option<String>,
    /// At most this many records.
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum FailedAction {
    /// One failed job in full: error, causes, payload.
    Show {
        /// The job's id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct FailedList<'a> {
    failed: &'a [FailedJob],
    total: u64,
}

pub(crate) async fn list_or_show(
    store: Arc<dyn Store>,
    a: FailedArgs,
) -> Result<ExitCode, CliError> {
    if let Some(FailedAction::Show { id, json }) = a.action {
        return show(store, &id, json || a.json).await;
    }
    let filter = FailedFilter {
        queue: a.queue,
        limit: Some(a.limit),
    };
    let (failed, total) = store.failed_jobs(&filter).await?;
    if a.json {
        output::json(&FailedList {
            failed: &failed,
            total,
        });
        return Ok(ExitCode::SUCCESS);
    }
    if failed.is_empty() {
        println!("no failed jobs");
        return Ok(ExitCode::SUCCESS);
    }
    print_table(&failed);
    if total > failed.len() as u64 {
        println!("… {} of {total} shown (use --limit)", failed.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// The table `spool failed` prints (the demo shows the same).
pub(crate) fn print_table(failed: &[FailedJob]) {
    output::table_of(
        &["ID", "QUEUE", "JOB", "ATTEMPTS", "FAILED AT", "ERROR"],
        failed,
        |f| {
            vec![
                f.id.clone(),
                f.queue.clone(),
                f.job.clone(),
                f.attempts.to_string(),
                f.failed_at.clone(),
                output::one_line(&f.error, 60),
            ]
        },
    );
}

async fn show(store: Arc<dyn Store>, id: &str, json: bool) -> Result<ExitCode, CliError> {
    let Some(f) = store.failed_job(id).await? else {
        eprintln!("error: no failed job has id `{id}`");
        return Ok(ExitCode::FAILURE);
    };
    let payload = output::payload_of(&f.envelope)
        .unwrap_or_else(|| serde_json::Value::String(f.envelope.clone()));
    if json {
        #[derive(Serialize)]
        struct Shown<'a> {
            #[serde(flatten)]
            job: &'a FailedJob,
            payload: serde_json::Value,
        }
        output::json(&Shown { job: &f, payload });
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![
        ("id", f.id.clone()),
        ("job", f.job.clone()),
        ("queue", f.queue.clone()),
        ("attempts", f.attempts.to_string()),
        ("failed at", f.failed_at.clone()),
        ("error", f.error.clone()),
    ];
    if !f.tags.is_empty() {
        rows.push(("tags", f.tags.join(", ")));
    }
    rows.extend(
        f.causes
            .iter()
            .map(|cause| ("caused by", cause.to_string())),
    );
    rows.push(("payload", payload.to_string()));
    output::fields(&rows);
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub(crate) struct RetryArgs {
    /// Failed job ids, or `all`.
    #[arg(required = true)]
    ids: Vec<String>,
    /// With `all`: only this queue.
    #[arg(long)]
    queue: Option<String>,
}

pub(crate) async fn retry(store: Arc<dyn Store>, a: RetryArgs) -> Result<ExitCode, CliError> {
    let all = a.ids.iter().any(|i| i == "all");
    if all && a.ids.len() > 1 {
        return Err(CliError::Usage("give ids or `all`, not both".into()));
    }
    if a.queue.is_some() && !all {
        return Err(CliError::Usage("--queue goes with `retry all`".into()));
    }
    let selector = if all {
        RetrySelector::All { queue: a.queue }
    } else {
        RetrySelector::Ids(a.ids.clone())
    };
    let retried = spool::Spool::new(store).retry_failed(&selector).await?;
    for id in &retried {
        println!("{id}");
    }
    let missing: Vec<&String> = if all {
        vec![]
    } else {
        a.ids.iter().filter(|i| !retried.contains(i)).collect()
    };
    for id in &missing {
        eprintln!("error: no failed job has id `{id}`");
    }
    eprintln!("retried {} job(s)", retried.len());
    Ok(if missing.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[derive(Debug, Args)]
pub(crate) struct ForgetArgs {
    /// The failed job's id.
    id: String,
}

pub(crate) async fn forget(store: Arc<dyn Store>, a: ForgetArgs) -> Result<ExitCode, CliError> {
    if store.forget_failed(&a.id).await? {
        println!("forgot failed job {}", a.id);
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("error: no failed job has id `{}`", a.id);
        Ok(ExitCode::FAILURE)
    }
}

pub(crate) async fn flush(store: Arc<dyn Store>) -> Result<ExitCode, CliError> {
    let n = store.flush_failed().await?;
    println!("deleted {n} failed job record(s)");
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub(crate) struct PruneArgs {
    /// Delete records older than this many hours.
    #[arg(long, default_value_t = 24)]
    hours: u64,
}

pub(crate) async fn prune(store: Arc<dyn Store>, a: PruneArgs) -> Result<ExitCode, CliError> {
    let n = store
        .prune_failed(Duration::from_secs(a.hours * 3600))
        .await?;
    println!(
        "pruned {n} failed job record(s) older than {} hours",
        a.hours
    );
    Ok(ExitCode::SUCCESS)
}
