//! The worker: reserves jobs from the store and runs many at once.
//!
//! The loop in `fetch.rs` reads as its steps: start services (`services.rs`: registration,
//! the heartbeat of `heartbeat.rs` keeping the lease on its own thread, `maintenance.rs`
//! returning the jobs of dead workers, schedule tickers), check stop limits (`lifecycle.rs`),
//! settle and reserve (in priority order, never more than free slots), start jobs, idle wait,
//! drain, stop services. The attempt of one job in `execute.rs` reads as prepare → run
//! handler → retry decision (`retry.rs`) → settlement and events, the last a pure mapping in
//! `outcome.rs`. `complete.rs` is the one place that writes settlements: they ride with the
//! next reservation.

use std::{collections::HashSet, sync::Arc, time::Duration};

#[cfg(feature = "encryption")]
use crate::encryption::Keyring;
use crate::{
    events::Events,
    options::{Backoff, JobOptions},
    registry::Registry,
    store::{Store, StoreError, WorkerInfo},
};

mod complete;
mod control;
mod execute;
mod fetch;
mod heartbeat;
mod lifecycle;
mod maintenance;
mod outcome;
mod records;
mod services;
mod workflow;

pub use lifecycle::{ExitReason, Shutdown, ShutdownHandle, WorkerExit, hostname};

/// How a worker runs. Every field has a documented default (see the README's table).
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Queues served, in strict priority order. Default `["default"]`.
    pub queues: Vec<String>,
    /// Jobs run at once in this process. Default 10.
    pub concurrency: usize,
    /// How long the worker's lease lasts without a heartbeat. Default 30 s; heartbeats every
    /// third of it. A dead worker's jobs return to the queue about one lease after it died.
    pub lease: Duration,
    /// On SIGTERM/SIGINT: how long running jobs may finish before they are handed back.
    /// Default 30 s.
    pub grace: Duration,
    /// Longest idle wait before polling again (wake-ups usually come sooner). Default 1 s.
    pub sleep: Duration,
    /// Pause after each job before its slot takes another. Default 0.
    pub rest: Duration,
    /// Stop after reserving this many jobs.
    pub max_jobs: Option<u64>,
    /// Start only while fewer than this many live workers serve any of its queues (checked
    /// and registered atomically); else exit at once with [`ExitReason::Crowded`]. For cron
    /// mode: a slow run never piles up processes.
    pub max_workers: Option<u32>,
    /// Stop fetching after running this long.
    pub max_time: Option<Duration>,
    /// Stop (exit code 12) once resident memory reaches this many MB. Off unless set (D-4).
    pub memory_mb: Option<u64>,
    /// Stop when nothing is ready to run (Laravel's `--stop-when-empty`).
    pub stop_when_empty: bool,
    /// Stop when nothing is pending, delayed or reserved in the served queues.
    pub until_done: bool,
    /// Run one job, then stop.
    pub once: bool,
    /// Options for jobs that set none: tries 3, exponential backoff from 1 s to 10 min with
    /// jitter, timeout 60 s.
    pub defaults: JobOptions,
    /// A job whose worker died this many times fails as a poison pill. Default 3.
    pub max_recoveries: u32,
    /// A job deferred this many times (rate limits, Retry-After) fails. Default 100.
    pub max_deferrals: u32,
    /// Largest encoded envelope this worker runs; a larger one (written past the
    /// dispatcher's check) fails without running, with the reason. Match the dispatcher's
    /// `Spool::with_max_payload`. Default 256 KiB.
    pub max_payload: usize,
    /// Privileged built-in jobs this worker may run (`shell`, `http`; D-9). Default none.
    pub allow: HashSet<String>,
    /// Failed records older than this are pruned by the worker's maintenance. Default 7 days.
    pub failed_retention: Duration,
    /// Results that completed jobs stored are kept this long. Default 24 hours.
    pub result_retention: Duration,
    /// Every completed job's short record (id, job, queue, tags, batch, attempts and times;
    /// never its payload) is kept this long, for `spool jobs --completed`, the dashboard and
    /// [`AdminStore::completed_jobs`](crate::store::AdminStore::completed_jobs); a kept result
    /// stays for `result_retention` either way. Pruned by the worker's maintenance every
    /// minute. Default 1 hour (`spool work --history-retention`, `history_retention` in
    /// `spool.toml`).
    pub history_retention: Duration,
    /// Finished (and cancelled) batches are pruned by the worker's maintenance this long after
    /// they finished, like their failed records. Unfinished batches are never pruned by workers
    /// (`spool prune-batches --unfinished` does that). Default 7 days.
    pub batch_retention: Duration,
    /// Periodic jobs this worker pushes on their cron schedules (each tick fires once across
    /// all workers). Default none.
    #[cfg(feature = "schedule")]
    pub schedules: Vec<crate::Periodic>,
    /// Where the worker's events go, and the looping predicates it asks before taking jobs.
    /// Default: no listeners (events are then only logged at debug level).
    pub events: Events,
    /// Keys that open encrypted payloads. `None` (the default) reads `SPOOL_KEY` and
    /// `SPOOL_PREVIOUS_KEYS` when the worker starts; a bad key there stops it from starting.
    #[cfg(feature = "encryption")]
    pub keyring: Option<Keyring>,
}

/// How long completed jobs' short records are kept unless configured
/// ([`WorkerConfig::history_retention`]): one hour.
pub const DEFAULT_HISTORY_RETENTION: Duration = Duration::from_secs(3600);

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            queues: vec![crate::envelope::DEFAULT_QUEUE.to_string()],
            concurrency: 10,
            lease: Duration::from_secs(30),
            grace: Duration::from_secs(30),
            sleep: Duration::from_secs(1),
            rest: Duration::ZERO,
            max_jobs: None,
            max_workers: None,
            max_time: None,
            memory_mb: None,
            stop_when_empty: false,
            until_done: false,
            once: false,
            defaults: default_job_options(),
            max_recoveries: 3,
            max_deferrals: 100,
            max_payload: crate::envelope::DEFAULT_MAX_PAYLOAD_BYTES,
            allow: HashSet::new(),
            failed_retention: Duration::from_secs(7 * 24 * 3600),
            result_retention: Duration::from_secs(24 * 3600),
            history_retention: DEFAULT_HISTORY_RETENTION,
            batch_retention: Duration::from_secs(7 * 24 * 3600),
            #[cfg(feature = "schedule")]
            schedules: Vec::new(),
            events: Events::default(),
            #[cfg(feature = "encryption")]
            keyring: None,
        }
    }
}

/// The options a job gets when neither its type nor its dispatch set them.
pub fn default_job_options() -> JobOptions {
    JobOptions {
        tries: Some(3),
        backoff: Some(Backoff::exponential(
            Duration::from_secs(1),
            Duration::from_secs(600),
        )),
        timeout: Some(Duration::from_secs(60)),
        ..JobOptions::default()
    }
}

/// A worker could not start or keep going.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// A setting is out of range.
    #[error("invalid worker setting: {0}")]
    Config(String),
    /// The store failed in a way reconnecting cannot fix.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A running worker's counts, from [`Worker::counters`].
#[derive(Debug, Clone)]
pub struct WorkerCounters {
    tally: Arc<execute::Tally>,
    concurrency: usize,
}

impl WorkerCounters {
    /// Jobs completed by this worker.
    pub fn completed(&self) -> u64 {
        self.tally
            .completed
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Jobs this worker failed for good.
    pub fn failed(&self) -> u64 {
        self.tally.failed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Jobs handed back by a shutdown.
    pub fn handed_back(&self) -> u64 {
        self.tally
            .handed_back
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Jobs running now.
    pub fn running(&self) -> u64 {
        self.tally
            .running
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Jobs it runs at once at most.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }
}

/// A worker process's job runner. Build it, then [`run`](Worker::run) it.
pub struct Worker {
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    config: WorkerConfig,
    shutdown: ShutdownHandle,
    info: WorkerInfo,
    tally: Arc<execute::Tally>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("store", &self.store.backend())
            .field("config", &self.config)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker over `store` running the jobs in `registry`.
    pub fn new(store: Arc<dyn Store>, registry: Registry, config: WorkerConfig) -> Worker {
        let host = hostname();
        let pid = std::process::id();
        let info = WorkerInfo {
            id: format!("{host}-{pid}-{:08x}", fastrand::u32(..)),
            host,
            pid,
            queues: config.queues.clone(),
        };
        // Chains with a batch step need it, whatever the app registered.
        let registry = registry.register::<crate::chain::BatchStep>();
        Worker {
            store,
            registry: Arc::new(registry),
            config,
            shutdown: ShutdownHandle::default(),
            info,
            tally: Arc::default(),
        }
    }

    /// This worker's counts so far, readable while it runs (what `spool work --http` serves
    /// at `/metrics`).
    pub fn counters(&self) -> WorkerCounters {
        WorkerCounters {
            tally: self.tally.clone(),
            concurrency: self.config.concurrency,
        }
    }

    /// A handle that asks the worker to stop (what SIGTERM does in the CLI).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// This worker's id as registered in the store.
    pub fn id(&self) -> &str {
        &self.info.id
    }

    /// Runs until a stop condition, a shutdown request, or a limit; see [`ExitReason`].
    pub async fn run(self) -> Result<WorkerExit, WorkerError> {
        self.validate()?;
        let mut worker = self;
        worker.load_keys()?;
        fetch::run(worker).await
    }

    /// Reads the keys from the environment unless the config brought its own.
    #[cfg(feature = "encryption")]
    fn load_keys(&mut self) -> Result<(), WorkerError> {
        if self.config.keyring.is_none() {
            self.config.keyring =
                Keyring::from_env().map_err(|e| WorkerError::Config(e.to_string()))?;
        }
        self.check_keys()
    }

    /// A worker without keys would fail every job of an encrypted type for good, draining its
    /// queues into the failed store: it refuses to start instead, and the jobs wait for a
    /// worker that has the key.
    fn check_keys(&self) -> Result<(), WorkerError> {
        #[cfg(feature = "encryption")]
        let has_key = self.config.keyring.is_some();
        #[cfg(not(feature = "encryption"))]
        let has_key = false;
        let encrypted: Vec<String> = self
            .registry
            .names()
            .into_iter()
            .filter(|name| self.registry.is_encrypted(name))
            .map(|name| format!("`{name}`"))
            .collect();
        if has_key || encrypted.is_empty() {
            return Ok(());
        }
        let (kind, verb) = if encrypted.len() == 1 {
            ("job type", "is")
        } else {
            ("job types", "are")
        };
        Err(WorkerError::Config(format!(
            "{kind} {} {verb} encrypted but no key is configured: set SPOOL_KEY (and SPOOL_PREVIOUS_KEYS while rotating) or give the worker a Keyring",
            encrypted.join(", ")
        )))
    }

    #[cfg(not(feature = "encryption"))]
    fn load_keys(&mut self) -> Result<(), WorkerError> {
        self.check_keys()
    }

    fn validate(&self) -> Result<(), WorkerError> {
        let c = &self.config;
        if c.concurrency == 0 {
            return Err(WorkerError::Config(
                "--concurrency must be at least 1".into(),
            ));
        }
        if c.queues.is_empty() {
            return Err(WorkerError::Config(
                "--queue needs at least one name".into(),
            ));
        }
        for queue in &c.queues {
            crate::limits::check_queue(queue)
                .map_err(|e| WorkerError::Config(format!("--queue: {e}")))?;
        }
        if c.lease < Duration::from_millis(300) {
            return Err(WorkerError::Config(
                "the lease must be at least 300ms".into(),
            ));
        }
        Ok(())
    }
}
