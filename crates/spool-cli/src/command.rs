//! The parsed command line: the global `--url` and one command.

use clap::{
    ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, parser::ValueSource,
};

use crate::{
    admin, batches, bench, control, demo, dispatch, failed, health, inspect, install, jobs,
    output::LogFormat, schedule, supervise, work,
};

/// Spool's command line: the global `--url` and one command.
///
/// It is a clap [`Parser`], so an app can also mount Spool's commands under a subcommand of
/// its own clap command line and hand them to [`App::run_with`](crate::App::run_with):
///
/// ```no_run
/// use clap::{Parser, Subcommand};
///
/// #[derive(Parser)]
/// struct MyApp {
///     #[command(subcommand)]
///     command: MyCommand,
/// }
///
/// #[derive(Subcommand)]
/// enum MyCommand {
///     /// Serve the app.
///     Serve,
///     /// Background jobs: `myapp jobs work`, `myapp jobs failed`, ...
///     Jobs(spool_cli::Cli),
/// }
///
/// #[tokio::main]
/// async fn main() -> std::process::ExitCode {
///     match MyApp::parse().command {
///         MyCommand::Serve => std::process::ExitCode::SUCCESS,
///         MyCommand::Jobs(cli) => {
///             spool_cli::App::new(spool::Registry::with_builtins()).run_with(cli).await
///         }
///     }
/// }
/// ```
#[derive(Debug)]
pub struct Cli {
    // Boxed so that an app's own subcommand enum holding a `Cli` stays small.
    pub(crate) args: Box<CliArgs>,
    /// Whether `--url` was on the command line (not from `SPOOL_URL` or the default): the
    /// bench touches a store only when it was.
    pub(crate) url_given: bool,
}

impl Cli {
    /// The store URL: `--url`, else `SPOOL_URL`, else the configuration file's `url`, else
    /// `sqlite://spool.db`.
    pub fn url(&self) -> String {
        let file = supervise::read_config(self.args.config.as_deref())
            .ok()
            .flatten()
            .and_then(|f| f.url);
        store_url(self.args.url.clone(), file)
    }

    /// The log format asked for (`--log-format` or `SPOOL_LOG_FORMAT`).
    /// `--log-format`, else `SPOOL_LOG_FORMAT`, else the configuration file's (`file`), else text.
    pub(crate) fn log_format(&self, file: Option<LogFormat>) -> LogFormat {
        self.args
            .log_format
            .unwrap_or_else(|| match std::env::var("SPOOL_LOG_FORMAT").as_deref() {
                Ok("json") => LogFormat::Json,
                Ok(_) => LogFormat::Text,
                Err(_) => file.unwrap_or(LogFormat::Text),
            })
    }

    /// Whether the command runs jobs (or their workers) until stopped, rather than printing
    /// and ending.
    pub(crate) fn runs_jobs(&self) -> bool {
        matches!(
            self.args.command,
            Command::Work(_) | Command::Supervise(_) | Command::BenchWorker(_)
        )
    }

    /// `work`, `supervise` and `dashboard` (its action log) log at `info` by default, the other
    /// commands at `warn`.
    pub(crate) fn logs_info(&self) -> bool {
        matches!(
            self.args.command,
            Command::Work(_) | Command::Supervise(_) | Command::Dashboard(_)
        )
    }
}

/// Spool: background jobs on SQLite, PostgreSQL, MySQL or Redis.
#[derive(Debug, Parser)]
// The about line `spool --help` has always printed (it was the library's description).
#[command(
    name = "spool",
    version,
    about = "Background jobs for Rust: queues, workers, retries, leases, and a CLI, on SQLite, PostgreSQL, MySQL or Redis.",
    propagate_version = true
)]
pub(crate) struct CliArgs {
    /// Store URL: sqlite://PATH, postgres://USER@HOST/DB, mysql://USER@HOST/DB or
    /// redis://HOST:PORT/DB. Without it: $SPOOL_URL, else sqlite://spool.db. `bench` reads only
    /// --url: it wipes the store it measures.
    // Neither a clap default nor a clap env: either makes clap print the global flag in every
    // usage line as if it were required, and the env value (which may hold a password) in help.
    #[arg(long, global = true)]
    pub(crate) url: Option<String>,
    /// The configuration file (docs/configuration.md). Without it: spool.toml in the working
    /// directory, if there is one.
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) config: Option<std::path::PathBuf>,
    /// Log format on stderr: `text`, or `json` (one JSON object per line, for log shippers).
    /// Without it: $SPOOL_LOG_FORMAT, else `text`.
    #[arg(long, global = true, value_enum)]
    pub(crate) log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Enqueue a job (or, with --stdin, one per input line).
    Dispatch(dispatch::DispatchArgs),
    /// Run a worker.
    Work(work::WorkArgs),
    /// Run the configuration's pools of worker processes, scaled to demand.
    Supervise(supervise::SuperviseArgs),
    /// The configuration file's periodic jobs: `schedule list`.
    Schedule(schedule::ScheduleArgs),
    /// Print a systemd unit or a Supervisor program section for `spool supervise`.
    Install(install::InstallArgs),
    /// Queue counts, totals and live workers.
    Status(inspect::JsonFlag),
    /// What ran over a window, per queue and job: counts, throughput, failure rate, wait and
    /// run p50/p95/p99.
    Stats(crate::stats::StatsArgs),
    /// A live terminal view of the queues, workers and failures (`--once`: print it as text).
    Monitor(crate::monitor::MonitorArgs),
    /// Serve the web dashboard, Prometheus /metrics, /livez and /health.
    Dashboard(crate::dashboard::DashboardArgs),
    /// Language-model provider keys shared by every worker: `llm status`, `llm resume NAME`.
    #[cfg(feature = "llm")]
    Llm(crate::llm::LlmArgs),
    /// An offline OpenAI-compatible server with real rate limits, for tests and demos.
    #[cfg(feature = "llm")]
    MockLlm(crate::mock_llm::MockLlmArgs),
    /// Check the store, its workers and queues: exit 0 healthy, 1 unhealthy, 3 unreachable.
    Health(health::HealthArgs),
    /// List queued jobs.
    Jobs(jobs::JobsArgs),
    /// Show, delete or run now one queued job.
    Job(jobs::JobArgs),
    /// Number of jobs (pending + delayed + reserved) per queue.
    Size(inspect::SizeArgs),
    /// Delete the pending and delayed jobs of a queue.
    Clear(admin::ClearArgs),
    /// Ask every worker to stop after its current jobs (for deploys).
    Restart,
    /// Workers take nothing from these queues until `continue` (dispatch still works).
    Pause(control::QueuesArgs),
    /// Undo `pause`: workers take from these queues again.
    Continue(control::QueuesArgs),
    /// Workers (those named, or all running) take no new jobs and finish what they run.
    Quiet(control::QuietArgs),
    /// Every worker and supervisor finishes its running jobs and exits.
    Terminate,
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

/// `--url`, else `SPOOL_URL`, else the configuration file's `url`, else the default.
pub(crate) fn store_url(flag: Option<String>, file: Option<String>) -> String {
    flag.or_else(|| std::env::var("SPOOL_URL").ok().filter(|u| !u.is_empty()))
        .or(file)
        .unwrap_or_else(|| spool::store::DEFAULT_URL.to_string())
}

fn url_given(matches: &ArgMatches) -> bool {
    matches.value_source("url") == Some(ValueSource::CommandLine)
}

// By hand rather than derived, to keep whether `--url` was given, which the derived parser
// forgets.
impl FromArgMatches for Cli {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        Ok(Cli {
            args: Box::new(CliArgs::from_arg_matches(matches)?),
            url_given: url_given(matches),
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        self.args.update_from_arg_matches(matches)?;
        self.url_given = url_given(matches);
        Ok(())
    }
}

impl Args for Cli {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        CliArgs::augment_args(cmd)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        CliArgs::augment_args_for_update(cmd)
    }
}

impl CommandFactory for Cli {
    fn command() -> clap::Command {
        CliArgs::command()
    }

    fn command_for_update() -> clap::Command {
        CliArgs::command_for_update()
    }
}

impl Parser for Cli {}
