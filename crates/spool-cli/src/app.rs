//! [`App`]: the command line with an app's own jobs and worker pieces, run on a runtime of its
//! own or on the caller's.

use std::{ffi::OsString, path::PathBuf, process::ExitCode, time::Duration};

use clap::{CommandFactory, FromArgMatches};
use spool::{Periodic, Registry, WorkerConfig, events::Events};

use crate::{
    CliError, admin, batches, bench,
    command::{Cli, CliArgs, Command},
    control, demo, dispatch, failed, health, inspect, install, jobs, output, schedule,
    supervise::{self, WorkerCommand},
    telemetry::Telemetry,
    work,
};

/// Spool's command line with an app's own jobs and worker pieces.
///
/// The `work` command builds its [`WorkerConfig`] from its flags; the pieces given here are
/// added to it before the worker starts (periodic jobs, event listeners, and anything else
/// through [`configure_worker`](App::configure_worker), such as retention times).
///
/// ```no_run
/// use std::time::Duration;
/// use spool::{Registry, events::Events};
///
/// #[tokio::main]
/// async fn main() -> std::process::ExitCode {
///     let events = Events::new();
///     events.on(|event| eprintln!("{}", event.name()));
///     spool_cli::App::new(Registry::with_builtins())
///         .events(events)
///         .configure_worker(|config| config.failed_retention = Duration::from_secs(30 * 86_400))
///         .run()
///         .await
/// }
/// ```
pub struct App {
    registry: Registry,
    setup: WorkerSetup,
    logging: bool,
    worker_command: WorkerCommand,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("periodic", &self.setup.periodic.len())
            .field("worker_pieces", &self.setup.configure.len())
            .field("logging", &self.logging)
            .finish_non_exhaustive()
    }
}

impl App {
    /// The command line running `registry`'s jobs (start from [`Registry::with_builtins`] to
    /// keep the built-in ones).
    pub fn new(registry: Registry) -> App {
        App {
            registry,
            setup: WorkerSetup::default(),
            logging: true,
            worker_command: WorkerCommand::default(),
        }
    }

    /// A periodic job the `work` command's worker pushes on its schedule.
    pub fn periodic(mut self, periodic: Periodic) -> App {
        self.setup.periodic.push(periodic);
        self
    }

    /// The events hub the `work` command's worker reports to (its listeners and looping
    /// predicates); without it, events are only logged at debug level.
    pub fn events(mut self, events: Events) -> App {
        self.setup.events = Some(events);
        self
    }

    /// Changes the `work` command's worker configuration after its flags were applied, e.g.
    /// retention times. Called once, just before the worker starts; calls add up in order.
    pub fn configure_worker(
        mut self,
        configure: impl FnOnce(&mut WorkerConfig) + Send + 'static,
    ) -> App {
        self.setup.configure.push(Box::new(configure));
        self
    }

    /// The arguments before Spool's own that `spool supervise` starts its worker processes
    /// with, when the app mounts Spool's commands under a subcommand of its own: with
    /// `.worker_prefix(["jobs"])`, `myapp jobs supervise` runs `myapp jobs work ...`. The
    /// program is this process's own binary unless [`worker_program`](App::worker_program)
    /// names another.
    pub fn worker_prefix<I, S>(mut self, prefix: I) -> App
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.worker_command.prefix = prefix.into_iter().map(Into::into).collect();
        self
    }

    /// The binary `spool supervise` starts its worker processes from (default: this
    /// process's own, `std::env::current_exe`).
    pub fn worker_program(mut self, program: impl Into<PathBuf>) -> App {
        self.worker_command.program = Some(program.into());
        self
    }

    /// Whether to send logs to stderr (`SPOOL_LOG` or `RUST_LOG` pick the level). On by
    /// default; an app that sets up its own `tracing` subscriber first keeps its own either way.
    pub fn logging(mut self, on: bool) -> App {
        self.logging = on;
        self
    }

    /// Runs the command line of this process on a tokio runtime of its own; returns the exit
    /// code. For an app's `fn main`; inside a runtime, use [`run`](App::run).
    pub fn main(self) -> ExitCode {
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                eprintln!("error: cannot start the tokio runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
        let code = runtime.block_on(self.run());
        // Don't wait for stray blocking tasks (a runaway handler) at exit.
        runtime.shutdown_timeout(Duration::from_secs(1));
        code
    }

    /// Runs the command line of this process on the caller's (multi-threaded) tokio runtime;
    /// returns the exit code.
    pub async fn run(self) -> ExitCode {
        self.run_from(std::env::args_os()).await
    }

    /// Runs the command line `args` (the first is the program name) on the caller's tokio
    /// runtime; returns the exit code. A usage error, `--help` or `--version` prints what clap
    /// prints and returns its exit code, without ending the process.
    ///
    /// ```no_run
    /// # async fn example() {
    /// let app = spool_cli::App::new(spool::Registry::with_builtins());
    /// let code = app.run_from(["myapp", "--url", "sqlite://jobs.db", "status"]).await;
    /// # }
    /// ```
    pub async fn run_from<I, T>(self, args: I) -> ExitCode
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let parsed = Cli::command()
            .try_get_matches_from(args)
            .and_then(|matches| Cli::from_arg_matches(&matches));
        match parsed {
            Ok(cli) => self.run_with(cli).await,
            Err(e) => {
                let _ = e.print();
                ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
            }
        }
    }

    /// Runs an already parsed command line (e.g. Spool's commands mounted under a subcommand
    /// of the app's own clap command line; see [`Cli`]) on the caller's tokio runtime; returns
    /// the exit code. A failed command prints `error: ...` on stderr and returns 1.
    pub async fn run_with(self, cli: Cli) -> ExitCode {
        if !cli.runs_jobs() {
            // A one-shot command whose reader went away (`spool jobs | head`) ends as Unix
            // tools do, rather than panicking on the next line. A worker keeps ignoring it:
            // a dead log reader must not end its jobs.
            sigpipe::reset();
        }
        // The configuration file is read and checked before anything else: a mistake in it
        // is a usage error naming its line, whatever the command.
        let file = match supervise::read_config(cli.args.config.as_deref()) {
            Ok(file) => file,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        // Exporters only for the long-running commands, and only with Spool's own logging: an
        // app with its own subscriber has its own OpenTelemetry set-up, if any.
        let telemetry = if self.logging && cli.logs_info() {
            Telemetry::from_env()
        } else {
            Telemetry::none()
        };
        if self.logging {
            let format = cli.log_format(file.as_ref().and_then(|f| f.log_format));
            output::init_logging(cli.logs_info(), format, &telemetry);
            telemetry.report();
        }
        let code = match self.execute(cli, file).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
        telemetry.shutdown().await;
        code
    }

    async fn execute(self, cli: Cli, file: Option<supervise::File>) -> Result<ExitCode, CliError> {
        let App {
            registry,
            setup,
            worker_command,
            ..
        } = self;
        let Cli { args, url_given } = cli;
        let CliArgs {
            url,
            config,
            command,
            log_format,
        } = *args;
        let url_flag = url.clone();
        let url = crate::command::store_url(url, file.as_ref().and_then(|f| f.url.clone()));
        let schedules = match &file {
            Some(f) => f.schedules().map_err(CliError::Usage)?,
            None => Vec::new(),
        };
        let alerts = match &file {
            Some(f) => f.alerts().map_err(CliError::Usage)?,
            None => Vec::new(),
        };
        // Commands that put jobs in or run them create or upgrade Spool's tables; the others
        // (reading, administering) never create a store where a mistyped URL points, and work
        // with a read-only database role.
        let connect = || spool::store::connect(&url);
        let existing = || spool::store::open_existing(&url);
        match command {
            Command::Dispatch(a) => dispatch::run(connect().await?, &registry, a).await,
            Command::Work(a) => {
                let mut setup = setup;
                for (entry, periodic) in schedules {
                    // Refused at start, naming the entry, rather than failing at every tick.
                    if !registry.contains(&entry.job) {
                        return Err(CliError::Usage(format!(
                            "schedule `{}`: this worker has no job named `{}`",
                            entry.name, entry.job
                        )));
                    }
                    // Encrypted job types (`shell`, `http`) are sealed as their dispatches are.
                    let periodic = if registry.is_encrypted(&entry.job) {
                        periodic.sealed()
                    } else {
                        periodic
                    };
                    setup.periodic.push(periodic);
                }
                #[cfg(feature = "llm")]
                let registry = if registry.state::<spool::llm::Llm>().is_ok() {
                    registry
                } else {
                    registry.with_state(llm_client(file.as_ref())?)
                };
                let store = connect().await?;
                crate::alerts::spawn(&store, alerts);
                let history = file.as_ref().and_then(|f| f.history_retention);
                work::run(store, registry, a, setup, history).await
            }
            Command::Schedule(a) => schedule::run(&schedules, a),
            Command::Supervise(a) => {
                let path = supervise::config_path(config.as_deref());
                let mut global = Vec::new();
                if let Some(format) = log_format {
                    global.extend(["--log-format".into(), format.as_arg().into()]);
                }
                // Workers read the same file (they take their store from `SPOOL_URL`).
                if let Some(config) = &config {
                    global.extend(["--config".into(), config.clone().into_os_string()]);
                }
                let launcher = supervise::Launcher::new(worker_command, global, url.clone())?;
                let source = supervise::Source::file(path);
                let store = connect().await?;
                crate::alerts::spawn(&store, alerts);
                if let Some(addr) = a.http {
                    crate::http::serve(addr, store.clone(), None).await?;
                }
                supervise::run(store, &url, source, launcher).await
            }
            Command::Install(a) => {
                let path = supervise::config_path(config.as_deref());
                let spec = supervise::load(&path).map_err(CliError::Usage)?;
                let program = match &worker_command.program {
                    Some(p) => p.clone(),
                    None => std::env::current_exe()?,
                };
                install::run(
                    a,
                    install::UnitInputs {
                        program: &program,
                        prefix: &worker_command.prefix,
                        config: Some(&path),
                        url: url_flag.as_deref(),
                        spec: &spec,
                    },
                )
            }
            Command::Migrate => admin::migrate(connect().await?).await,
            Command::Status(a) => inspect::status(existing().await?, a).await,
            Command::Stats(a) => crate::stats::stats(existing().await?, a).await,
            Command::Monitor(a) => crate::monitor::run(existing().await?, a).await,
            Command::Dashboard(a) => {
                let section = file.as_ref().and_then(|f| f.dashboard.clone());
                let store = existing().await?;
                crate::alerts::spawn(&store, alerts);
                crate::dashboard::run(store, a, section).await
            }
            Command::Health(a) => health::run(&url, a).await,
            #[cfg(feature = "llm")]
            Command::MockLlm(a) => crate::mock_llm::run(a).await,
            #[cfg(feature = "llm")]
            Command::Llm(a) => {
                crate::llm::run(existing().await?, llm_client(file.as_ref())?, a).await
            }
            Command::Jobs(a) => jobs::jobs(existing().await?, a).await,
            Command::Job(a) => jobs::job(existing().await?, a).await,
            Command::Size(a) => inspect::size(existing().await?, a).await,
            Command::Clear(a) => admin::clear(existing().await?, a).await,
            Command::Restart => admin::restart(existing().await?).await,
            Command::Pause(a) => control::pause(existing().await?, a).await,
            Command::Continue(a) => control::resume(existing().await?, a).await,
            Command::Quiet(a) => control::quiet(existing().await?, a).await,
            Command::Terminate => control::terminate(existing().await?).await,
            Command::Failed(a) => failed::list_or_show(existing().await?, a).await,
            Command::Retry(a) => failed::retry(existing().await?, a).await,
            Command::Forget(a) => failed::forget(existing().await?, a).await,
            Command::Flush => failed::flush(existing().await?).await,
            Command::PruneFailed(a) => failed::prune(existing().await?, a).await,
            Command::Batches(a) => batches::list_or_show(existing().await?, a).await,
            Command::RetryBatch(a) => batches::retry(existing().await?, a).await,
            Command::PruneBatches(a) => batches::prune(existing().await?, a).await,
            Command::Bench(a) => bench::run(url_given.then_some(url), a).await,
            Command::BenchWorker(a) => bench::run_worker(connect().await?, a).await,
            Command::Demo(a) => demo::run(connect().await?, registry, a).await,
        }
    }
}

/// The app's pieces of the `work` command's worker configuration.
#[derive(Default)]
pub(crate) struct WorkerSetup {
    periodic: Vec<Periodic>,
    events: Option<Events>,
    configure: Vec<Configure>,
}

/// One [`App::configure_worker`] call.
type Configure = Box<dyn FnOnce(&mut WorkerConfig) + Send>;

impl WorkerSetup {
    /// Adds the app's pieces to a configuration built from the `work` command's flags.
    pub(crate) fn apply(self, config: &mut WorkerConfig) {
        config.schedules.extend(self.periodic);
        if let Some(events) = self.events {
            config.events = events;
        }
        for configure in self.configure {
            configure(config);
        }
    }
}

/// The language-model client the configuration file describes (or the environment's).
#[cfg(feature = "llm")]
fn llm_client(file: Option<&supervise::File>) -> Result<spool::llm::Llm, CliError> {
    match file {
        Some(file) => file.llm().map_err(CliError::Usage),
        None => spool::llm::Llm::new(Vec::new()).map_err(|e| CliError::Usage(e.to_string())),
    }
}
