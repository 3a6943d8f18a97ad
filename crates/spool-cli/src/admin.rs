//! `spool clear`, `spool restart`, `spool migrate`.

use std::{process::ExitCode, sync::Arc};

use clap::Args;

use super::CliError;
use spool::Store;

#[derive(Debug, Args)]
pub(crate) struct ClearArgs {
    /// The queue to clear.
    #[arg(long)]
    queue: String,
}

pub(crate) async fn clear(store: Arc<dyn Store>, a: ClearArgs) -> Result<ExitCode, CliError> {
    let n = store.clear(&a.queue).await?;
    println!(
        "cleared {n} job(s) from queue `{}` (reserved jobs finish)",
        a.queue
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn restart(store: Arc<dyn Store>) -> Result<ExitCode, CliError> {
    let epoch = store.signal_restart().await?;
    super::control::clear_quiet(store.as_ref()).await?;
    println!("restart signalled (epoch {epoch}): workers stop after their current jobs");
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn migrate(store: Arc<dyn Store>) -> Result<ExitCode, CliError> {
    // `connect` already migrated; this confirms it for scripts.
    store.migrate().await?;
    println!("{} store is up to date", store.backend());
    Ok(ExitCode::SUCCESS)
}
