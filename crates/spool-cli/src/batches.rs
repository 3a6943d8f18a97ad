//! `spool batches [show ID]`, `spool retry-batch ID`, `spool prune-batches`.

use std::{process::ExitCode, sync::Arc, time::Duration};

use clap::{Args, Subcommand};
use serde::Serialize;

use super::{CliError, output};
use spool::store::{BatchInfo, BatchPrune, RetrySelector, Store};

#[derive(Debug, Args)]
pub(crate) struct BatchesArgs {
    #[command(subcommand)]
    show: Option<Show>,
    /// At most this many, newest first.
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Print JSON: {"batches":[{"id","name","total","pending","failed","progress",
    /// "cancelled_at","finished_at",...}]}.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Show {
    /// One batch, with its failed job ids.
    Show {
        /// The batch id.
        id: String,
    },
}

pub(crate) async fn list_or_show(
    store: Arc<dyn Store>,
    a: BatchesArgs,
) -> Result<ExitCode, CliError> {
    if let Some(Show::Show { id }) = a.show {
        let Some(batch) = store.batch(&id).await? else {
            eprintln!("error: no batch has id `{id}` (it may have been pruned)");
            return Ok(ExitCode::FAILURE);
        };
        if a.json {
            output::json(&batch);
        } else {
            show(&batch);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let batches = store.batches(a.limit).await?;
    if a.json {
        #[derive(Serialize)]
        struct Doc {
            batches: Vec<BatchInfo>,
        }
        output::json(&Doc { batches });
        return Ok(ExitCode::SUCCESS);
    }
    if batches.is_empty() {
        println!("no batches");
        return Ok(ExitCode::SUCCESS);
    }
    output::table_of(
        &[
            "ID", "NAME", "TOTAL", "PENDING", "FAILED", "PROGRESS", "STATE",
        ],
        &batches,
        |b| {
            vec![
                b.id.clone(),
                output::one_line(&b.name, 30),
                b.total.to_string(),
                b.pending.to_string(),
                b.failed.to_string(),
                format!("{}%", b.progress),
                state(b).into(),
            ]
        },
    );
    Ok(ExitCode::SUCCESS)
}

fn state(b: &BatchInfo) -> &'static str {
    match (&b.cancelled_at, &b.finished_at) {
        (Some(_), _) => "cancelled",
        (None, Some(_)) => "finished",
        (None, None) => "running",
    }
}

fn show(b: &BatchInfo) {
    let mut rows = vec![
        ("id", b.id.clone()),
        ("name", b.name.clone()),
        ("state", state(b).to_string()),
        ("total", b.total.to_string()),
        ("pending", b.pending.to_string()),
        ("failed", b.failed.to_string()),
        ("progress", format!("{}%", b.progress)),
        ("allow failures", b.allow_failures.to_string()),
        ("created at", b.created_at.clone()),
        (
            "cancelled at",
            b.cancelled_at.as_deref().unwrap_or("-").to_string(),
        ),
        (
            "finished at",
            b.finished_at.as_deref().unwrap_or("-").to_string(),
        ),
    ];
    rows.extend(b.failed_ids.iter().map(|id| ("failed job", id.clone())));
    output::fields(&rows);
}

#[derive(Debug, Args)]
pub(crate) struct RetryBatchArgs {
    /// The batch whose failed jobs go back on their queues.
    id: String,
}

pub(crate) async fn retry(store: Arc<dyn Store>, a: RetryBatchArgs) -> Result<ExitCode, CliError> {
    if store.batch(&a.id).await?.is_none() {
        eprintln!(
            "error: no batch has id `{}` (it may have been pruned)",
            a.id
        );
        return Ok(ExitCode::FAILURE);
    }
    let retried = store
        .retry_failed(&RetrySelector::Batch(a.id.clone()))
        .await?;
    println!("retried {} failed job(s) of batch {}", retried.len(), a.id);
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub(crate) struct PruneBatchesArgs {
    /// Delete finished (and cancelled) batches finished more than this many hours ago.
    #[arg(long, default_value_t = 24)]
    hours: u64,
    /// Also delete unfinished batches created more than this many hours ago.
    #[arg(long)]
    unfinished: Option<u64>,
    /// Also delete cancelled batches created more than this many hours ago.
    #[arg(long)]
    cancelled: Option<u64>,
}

pub(crate) async fn prune(
    store: Arc<dyn Store>,
    a: PruneBatchesArgs,
) -> Result<ExitCode, CliError> {
    let hours = |h: u64| Duration::from_secs(h * 3600);
    let pruned = store
        .prune_batches(BatchPrune {
            finished: Some(hours(a.hours)),
            unfinished: a.unfinished.map(hours),
            cancelled: a.cancelled.map(hours),
        })
        .await?;
    println!("pruned {pruned} batch(es)");
    Ok(ExitCode::SUCCESS)
}
