//! `spool pause`, `continue`, `quiet`, `terminate`: what every worker and supervisor on every
//! machine honours within a second.

use std::{process::ExitCode, sync::Arc};

use clap::Args;

use super::CliError;
use spool::{Store, store::ControlKind};

#[derive(Debug, Args)]
pub(crate) struct QueuesArgs {
    /// The queues.
    #[arg(required = true, value_name = "QUEUE")]
    queues: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct QuietArgs {
    /// The workers to quiet (ids as `status` shows them); every running worker if none.
    #[arg(value_name = "WORKER_ID")]
    workers: Vec<String>,
}

fn check_queues(queues: &[String]) -> Result<(), CliError> {
    for queue in queues {
        spool::limits::check_queue(queue).map_err(|e| CliError::Usage(e.to_string()))?;
    }
    Ok(())
}

pub(crate) async fn pause(store: Arc<dyn Store>, a: QueuesArgs) -> Result<ExitCode, CliError> {
    check_queues(&a.queues)?;
    let changed = store.pause(&a.queues).await?;
    for queue in &a.queues {
        let was = if changed.contains(queue) {
            ""
        } else {
            " (already paused)"
        };
        println!("paused `{queue}`{was}: workers take nothing from it; dispatch still works");
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn resume(store: Arc<dyn Store>, a: QueuesArgs) -> Result<ExitCode, CliError> {
    check_queues(&a.queues)?;
    let changed = store.resume(&a.queues).await?;
    for queue in &a.queues {
        let was = if changed.contains(queue) {
            ""
        } else {
            " (was not paused)"
        };
        println!("continued `{queue}`{was}");
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn quiet(store: Arc<dyn Store>, a: QuietArgs) -> Result<ExitCode, CliError> {
    if !a.workers.is_empty() {
        let live = store.stats().await?.workers;
        let unknown: Vec<&String> = a
            .workers
            .iter()
            .filter(|id| !live.iter().any(|w| &w.id == *id))
            .collect();
        if !unknown.is_empty() {
            let ids: Vec<String> = unknown.iter().map(|id| format!("`{id}`")).collect();
            eprintln!(
                "error: no live worker {} (see `spool status`)",
                ids.join(", ")
            );
            return Ok(ExitCode::FAILURE);
        }
    }
    store.quiet(&a.workers).await?;
    if a.workers.is_empty() {
        println!("quiet: every running worker takes no new jobs and finishes what it runs");
    } else {
        println!(
            "quiet: {} take(s) no new jobs and finish what they run",
            a.workers.join(", ")
        );
    }
    println!("undo with `spool restart` (workers started after this are not quiet)");
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn terminate(store: Arc<dyn Store>) -> Result<ExitCode, CliError> {
    let epoch = store.terminate().await?;
    println!(
        "terminate signalled (epoch {epoch}): every worker and supervisor finishes its running jobs and exits"
    );
    Ok(ExitCode::SUCCESS)
}

/// `spool restart` also ends quiet: the processes it restarts come back taking jobs.
pub(crate) async fn clear_quiet(store: &dyn Store) -> Result<(), CliError> {
    store.clear_marks(ControlKind::Quiet).await?;
    Ok(())
}
