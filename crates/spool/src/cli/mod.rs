//! The `spool` command line, as a library so an app can embed it with its own jobs
//! (see `examples/embedded-cli`): `myapp work`, `myapp retry all` just work.
//!
//! Command names, flags and `--json` shapes are a contract, documented in `docs/cli.md`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::{Registry, store::StoreError};

mod admin;
mod args;
mod batches;
mod bench;
mod demo;
mod dispatch;
mod failed;
mod inspect;
mod output;
mod work;

/// A command failed; the message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A dispatch was refused.
    #[error(transparent)]
    Dispatch(#[from] crate::DispatchError),
    /// The worker could not run.
    #[error(transparent)]
    Worker(#[from] crate::WorkerError),
    /// Bad input.
    #[error("{0}")]
    Usage(String),
    /// Reading input or writing output failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Spool: background jobs on SQLite, PostgreSQL, MySQL or Redis.
#[derive(Debug, Parser)]
#[command(name = "spool", version, about, propagate_version = true)]
pub struct Cli {
    /// Store URL: sqlite://PATH, postgres://USER@HOST/DB, mysql://USER@HOST/DB or redis://HOST:PORT/DB.
    #[arg(long, global = true, env = "SPOOL_URL", default_value = crate::store::DEFAULT_URL)]
    pub url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Enqueue a job (or, with --stdin, one per input line).
    Dispatch(dispatch::DispatchArgs),
    /// Run a worker.
    Work(work::WorkArgs),
    /// Queue counts, totals and live workers.
    Status(inspect::JsonFlag),
    /// List queued jobs.
    Jobs(inspect::JobsArgs),
    /// Show, delete or run now one queued job.
    Job(inspect::JobArgs),
    /// Number of jobs (pending + delayed + reserved) per queue.
    Size(inspect::SizeArgs),
    /// Delete the pending and delayed jobs of a queue.
    Clear(admin::ClearArgs),
    /// Ask every worker to stop after its current jobs (for deploys).
    Restart,
    /// Create or upgrade Spool's tables.
    Migrate,
    /// List failed jobs, or `failed show ID`.
    Failed(failed::FailedArgs),
    /// Put failed jobs back on their queues: IDs or `all`.
    Retry(failed::RetryArgs),
    /// Delete one failed record.
    Forget(failed::ForgetArgs),
    /// Delete all failed records.
    Flush,
    /// Delete failed records older than N hours.
    PruneFailed(failed::PruneArgs),
    /// List batches, or `batches show ID`.
    Batches(batches::BatchesArgs),
    /// Put a batch's failed jobs back on their queues.
    RetryBatch(batches::RetryBatchArgs),
    /// Delete old batch records.
    PruneBatches(batches::PruneBatchesArgs),
    /// Measure throughput, latency and I/O concurrency (JSON lines).
    Bench(bench::BenchArgs),
    /// A one-minute tour: dispatches a few hundred jobs and runs them.
    Demo(demo::DemoArgs),
    /// The bench's worker process (started by `spool bench`).
    #[command(hide = true)]
    BenchWorker(bench::BenchWorkerArgs),
}

/// Runs the CLI with `registry`'s jobs; returns the process exit code.
pub fn main(registry: Registry) -> Result<ExitCode, CliError> {
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().get_matches();
    // The bench never touches the default store: it uses --url only when given explicitly.
    let explicit_url = matches.value_source("url") == Some(clap::parser::ValueSource::CommandLine);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    output::init_logging(matches!(cli.command, Command::Work(_)));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(run(cli, registry, explicit_url));
    // Don't wait for stray blocking tasks (a runaway handler) at exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn run(cli: Cli, registry: Registry, explicit_url: bool) -> Result<ExitCode, CliError> {
    let url = cli.url;
    let connect = || crate::store::connect(&url);
    match cli.command {
        Command::Dispatch(a) => dispatch::run(connect().await?, &registry, a).await,
        Command::Work(a) => work::run(connect().await?, registry, a).await,
        Command::Status(a) => inspect::status(connect().await?, a).await,
        Command::Jobs(a) => inspect::jobs(connect().await?, a).await,
        Command::Job(a) => inspect::job(connect().await?, a).await,
        Command::Size(a) => inspect::size(connect().await?, a).await,
        Command::Clear(a) => admin::clear(connect().await?, a).await,
        Command::Restart => admin::restart(connect().await?).await,
        Command::Migrate => admin::migrate(connect().await?).await,
        Command::Failed(a) => failed::list_or_show(connect().await?, a).await,
        Command::Retry(a) => failed::retry(connect().await?, a).await,
        Command::Forget(a) => failed::forget(connect().await?, a).await,
        Command::Flush => failed::flush(connect().await?).await,
        Command::PruneFailed(a) => failed::prune(connect().await?, a).await,
        Command::Batches(a) => batches::list_or_show(connect().await?, a).await,
        Command::RetryBatch(a) => batches::retry(connect().await?, a).await,
        Command::PruneBatches(a) => batches::prune(connect().await?, a).await,
        Command::Bench(a) => bench::run(explicit_url.then_some(url), a).await,
        Command::BenchWorker(a) => bench::run_worker(connect().await?, a).await,
        Command::Demo(a) => demo::run(connect().await?, registry, a).await,
    }
}
