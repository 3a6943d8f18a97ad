//! `spool work`: run a worker until a signal or a limit.

use std::{process::ExitCode, sync::Arc, time::Duration};

use clap::Args;

use crate::{CliError, app::WorkerSetup, args};
use spool::{Backoff, Registry, Store, Worker, WorkerConfig, worker::ShutdownHandle};

#[derive(Debug, Args)]
pub(crate) struct WorkArgs {
    /// Queues to serve in strict priority order, e.g. `high,default,low`.
    #[arg(long, value_parser = args::names, default_value = spool::DEFAULT_QUEUE)]
    queue: args::NameList,
    /// Jobs run at once.
    #[arg(long, short = 'c', default_value_t = 10)]
    concurrency: usize,
    /// On SIGTERM/SIGINT, how long running jobs may finish before they are handed back.
    #[arg(long, value_parser = args::duration, default_value = "30s")]
    grace: Duration,
    /// The worker's lease (heartbeats every third of it).
    #[arg(long, value_parser = args::duration, default_value = "30s")]
    lease: Duration,
    /// Stop after this many jobs.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    max_jobs: Option<u64>,
    /// Serve `GET /livez` and `GET /health` on this address (e.g. 127.0.0.1:7071) for
    /// orchestrators' probes.
    #[arg(long, value_name = "ADDR")]
    http: Option<std::net::SocketAddr>,
    /// Cron mode: exit 0 at once when this many live workers already serve any of these
    /// queues (checked and registered atomically, so workers starting together never pass it).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    max_workers: Option<u32>,
    /// Stop fetching after this long; running jobs finish.
    #[arg(long, value_parser = args::duration)]
    max_time: Option<Duration>,
    /// Stop (exit code 12) once resident memory reaches this many MB (at least 1).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    memory: Option<u64>,
    /// Stop when nothing is ready to run.
    #[arg(long, conflicts_with = "until_done")]
    stop_when_empty: bool,
    /// Stop when nothing is pending, delayed or reserved in these queues (exit 0 even if
    /// some jobs failed).
    #[arg(long)]
    until_done: bool,
    /// Run one job, then stop.
    #[arg(long, conflicts_with_all = ["stop_when_empty", "until_done", "max_jobs"])]
    once: bool,
    /// Longest idle wait before polling again (at least 10ms: wake-ups come from the store,
    /// this is only the fallback).
    #[arg(long, value_parser = args::poll_interval, default_value = "1s")]
    sleep: Duration,
    /// Pause after each job.
    #[arg(long, value_parser = args::duration, default_value = "0")]
    rest: Duration,
    /// Attempts for jobs that set none (0 = unlimited).
    #[arg(long, value_parser = args::tries, allow_hyphen_values = true)]
    tries: Option<u32>,
    /// Timeout for jobs that set none (0 = none).
    #[arg(long, value_parser = args::duration)]
    timeout: Option<Duration>,
    /// Backoff for jobs that set none, e.g. `1,5,10`.
    #[arg(long, value_parser = args::duration_list)]
    backoff: Option<args::DurationList>,
    /// Privileged built-in jobs this worker may run: `shell`, `http`, `llm`.
    #[arg(long, value_parser = args::names)]
    allow: Option<args::NameList>,
    /// Limit `http` jobs to this host (repeatable; exact names). Link-local and cloud
    /// metadata addresses are refused unless named.
    #[cfg(feature = "http")]
    #[arg(long = "allow-host", value_name = "HOST", value_parser = host)]
    allow_host: Vec<String>,
    /// A job whose worker died this many times fails.
    #[arg(long, default_value_t = 3)]
    max_recoveries: u32,
    /// How long every completed job's short record is kept (`spool jobs --completed`, the
    /// dashboard); `history_retention` in spool.toml when not given, else 1h.
    #[arg(long, value_parser = args::duration, value_name = "DURATION")]
    history_retention: Option<Duration>,
}

impl WorkArgs {
    /// The worker's configuration; `history_retention` is the configuration file's, used when
    /// the flag does not say.
    fn config(self, history_retention: Option<Duration>) -> Result<WorkerConfig, CliError> {
        let mut c = WorkerConfig {
            queues: self.queue,
            concurrency: self.concurrency,
            grace: self.grace,
            lease: self.lease,
            max_jobs: self.max_jobs,
            max_workers: self.max_workers,
            max_time: self.max_time,
            memory_mb: self.memory,
            stop_when_empty: self.stop_when_empty,
            until_done: self.until_done,
            once: self.once,
            sleep: self.sleep,
            rest: self.rest,
            max_recoveries: self.max_recoveries,
            history_retention: self
                .history_retention
                .or(history_retention)
                .unwrap_or(spool::worker::DEFAULT_HISTORY_RETENTION),
            ..WorkerConfig::default()
        };
        if let Some(tries) = self.tries {
            c.defaults.tries = Some(tries);
        }
        if let Some(timeout) = self.timeout {
            c.defaults.timeout = Some(timeout);
        }
        if let Some(backoff) = self.backoff {
            c.defaults.backoff = Some(Backoff::List(backoff));
        }
        for name in self.allow.unwrap_or_default() {
            if !matches!(name.as_str(), "shell" | "http" | "llm") {
                return Err(CliError::Usage(format!(
                    "--allow takes shell, http and llm, not `{name}`"
                )));
            }
            c.allow.insert(name);
        }
        Ok(c)
    }
}

pub(crate) async fn run(
    store: Arc<dyn Store>,
    registry: Registry,
    a: WorkArgs,
    setup: WorkerSetup,
    history_retention: Option<Duration>,
) -> Result<ExitCode, CliError> {
    #[cfg(feature = "http")]
    let registry = if a.allow_host.is_empty() {
        registry
    } else {
        registry.with_state(spool::builtin::HttpPolicy::allow_hosts(
            a.allow_host.clone(),
        ))
    };
    let http = a.http;
    let mut config = a.config(history_retention)?;
    setup.apply(&mut config);
    let max_workers = config.max_workers;
    #[cfg(feature = "llm")]
    let llm = registry.state::<spool::llm::Llm>().ok().cloned();
    let worker = Worker::new(store.clone(), registry, config);
    if let Some(addr) = http {
        crate::http::serve(addr, store, Some(worker.counters())).await?;
    }
    // Read by the meter provider while the worker runs (a no-op one without an exporter).
    let _instruments = crate::telemetry::observe_worker(worker.counters());
    stop_on_signals(worker.shutdown_handle());
    stop_without_supervisor(worker.shutdown_handle());
    // The worker logs its own one-line summary as it stops.
    let exit = worker.run().await?;
    #[cfg(feature = "llm")]
    if let Some(llm) = llm {
        llm.flush().await;
    }
    if exit.reason == spool::worker::ExitReason::Crowded {
        println!(
            "not started: {} live worker(s) already serve these queues (--max-workers)",
            max_workers.unwrap_or_default()
        );
    }
    Ok(ExitCode::from(exit.reason.exit_code()))
}

/// How long the worker may take to stop after the second signal before the process ends
/// anyway (a store call that hangs must not keep it alive).
const FORCED_STOP: Duration = Duration::from_secs(10);

/// Asks `shutdown` to stop; from the second signal on, also ends the process if the worker has
/// not stopped within [`FORCED_STOP`].
#[expect(
    clippy::exit,
    reason = "the operator's second signal must end the process even if a store call hangs"
)]
fn on_signal(shutdown: &ShutdownHandle, count: &mut u32) {
    *count += 1;
    shutdown.signal();
    if *count == 2 {
        std::thread::spawn(|| {
            std::thread::sleep(FORCED_STOP);
            eprintln!(
                "error: the worker did not stop within {}s of the second signal; exiting",
                FORCED_STOP.as_secs()
            );
            std::process::exit(1);
        });
    }
}

/// A bare host name or IP address, as `--allow-host` takes it.
#[cfg(feature = "http")]
fn host(text: &str) -> Result<String, String> {
    let bad = text.is_empty()
        || text
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '@' | '?' | '#'));
    if bad {
        return Err(format!(
            "`{text}` is not a host: give a name or address alone, e.g. `api.example.com`"
        ));
    }
    Ok(text.to_string())
}

/// SIGTERM or SIGINT: stop gracefully; a second one: hand back running jobs now (D-10), and
/// the process ends within [`FORCED_STOP`] whatever happens.
/// A worker started by `spool supervise` stops gracefully (running jobs finish) once its
/// supervisor is gone, killed with -9 say: it has been reparented, and a supervisor started
/// again runs workers of its own.
pub(crate) fn stop_without_supervisor(shutdown: ShutdownHandle) {
    #[cfg(unix)]
    {
        let Some(supervisor) = std::env::var(crate::supervise::SUPERVISOR_PID)
            .ok()
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            return;
        };
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let parent = rustix::process::Pid::as_raw(rustix::process::getppid());
                if parent != supervisor {
                    tracing::warn!(
                        supervisor,
                        "the supervisor that started this worker is gone: stopping after the running jobs"
                    );
                    shutdown.signal();
                    return;
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = shutdown;
}

pub(crate) fn stop_on_signals(shutdown: ShutdownHandle) {
    tokio::spawn(async move {
        let mut count = 0;
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                tracing::warn!("cannot install signal handlers; stop the worker with --max-time");
                return;
            };
            loop {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                tracing::info!("stop requested by signal");
                on_signal(&shutdown, &mut count);
            }
        }
        #[cfg(not(unix))]
        while tokio::signal::ctrl_c().await.is_ok() {
            on_signal(&shutdown, &mut count);
        }
    });
}
