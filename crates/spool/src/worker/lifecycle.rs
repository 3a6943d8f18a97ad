//! When a worker stops: shutdown requests, stop limits, draining running jobs, and how it
//! reports its exit.

use std::time::Duration;

use tokio::{sync::watch, task::JoinSet};

use super::WorkerConfig;

/// A request to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Shutdown {
    /// Keep running.
    Running,
    /// Stop fetching; running jobs get the grace period, then are handed back.
    Graceful,
    /// Hand back running jobs now.
    Immediate,
}

/// Asks a worker to stop. Cheap to clone; usable from any thread.
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    tx: std::sync::Arc<watch::Sender<Shutdown>>,
}

impl Default for ShutdownHandle {
    fn default() -> Self {
        ShutdownHandle {
            tx: std::sync::Arc::new(watch::channel(Shutdown::Running).0),
        }
    }
}

impl ShutdownHandle {
    /// Escalates: the first call asks for a graceful stop, the next for an immediate one.
    pub fn signal(&self) {
        self.tx.send_modify(|s| {
            *s = match *s {
                Shutdown::Running => Shutdown::Graceful,
                _ => Shutdown::Immediate,
            }
        });
    }

    /// Asks for at least `level`.
    pub fn request(&self, level: Shutdown) {
        self.tx.send_if_modified(|s| {
            let raise = level > *s;
            if raise {
                *s = level;
            }
            raise
        });
    }

    /// The current request.
    pub fn get(&self) -> Shutdown {
        *self.tx.borrow()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<Shutdown> {
        self.tx.subscribe()
    }
}

/// Waits until the shutdown request reaches `level`.
pub(crate) async fn reached(rx: &mut watch::Receiver<Shutdown>, level: Shutdown) {
    // An error means the sender is gone, which cannot happen while the worker runs.
    let _ = rx.wait_for(|s| *s >= level).await;
}

/// Why a worker stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitReason {
    /// SIGTERM/SIGINT or a [`ShutdownHandle`].
    Signal,
    /// `--max-jobs` reached.
    MaxJobs,
    /// `--max-time` reached.
    MaxTime,
    /// `--memory` reached (exit code 12).
    Memory,
    /// `spool restart` was signalled.
    Restart,
    /// `--stop-when-empty`: nothing ready.
    Empty,
    /// `--until-done`: nothing pending, delayed or reserved.
    Done,
    /// `--once` ran its job (or found none).
    Once,
    /// `spool terminate` was signalled: every worker and supervisor stops gracefully.
    Terminate,
    /// `--max-workers N`: N live workers already served its queues, so it did not start.
    Crowded,
    /// The worker could not keep its lease (heartbeats failed for most of it, the store said
    /// it expired, or the heartbeat's thread died): it stopped taking jobs and dropped the
    /// results of the running ones, which the reaper hands to another worker (exit code 13).
    LeaseLost,
}

impl ExitReason {
    /// The process exit code the CLI uses: 12 for memory (as Laravel), 13 for a lost lease,
    /// else 0.
    pub fn exit_code(self) -> u8 {
        match self {
            ExitReason::Memory => 12,
            ExitReason::LeaseLost => 13,
            _ => 0,
        }
    }
}

/// What a finished worker did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerExit {
    /// Why it stopped.
    pub reason: ExitReason,
    /// Jobs it reserved.
    pub reserved: u64,
    /// Jobs completed successfully.
    pub completed: u64,
    /// Jobs that failed for good.
    pub failed: u64,
    /// Jobs handed back by a shutdown.
    pub handed_back: u64,
}

/// Where the worker stands, as its stop limits see it.
pub(crate) struct Standing {
    /// Why the lease is lost, if it is.
    pub(crate) lease_lost: Option<&'static str>,
    /// The shutdown request so far.
    pub(crate) shutdown: Shutdown,
    /// Whether `spool restart` was signalled since the worker started.
    pub(crate) restart: bool,
    /// Whether `spool terminate` was signalled since the worker started.
    pub(crate) terminate: bool,
    /// How long the worker has run.
    pub(crate) elapsed: Duration,
    /// Jobs it reserved so far.
    pub(crate) reserved: u64,
}

/// The first stop limit the worker has reached, checked before every round of reserving.
pub(crate) fn stop_limit(config: &WorkerConfig, now: &Standing) -> Option<ExitReason> {
    if now.lease_lost.is_some() {
        return Some(ExitReason::LeaseLost);
    }
    if now.shutdown >= Shutdown::Graceful {
        return Some(ExitReason::Signal);
    }
    if now.terminate {
        return Some(ExitReason::Terminate);
    }
    if now.restart {
        return Some(ExitReason::Restart);
    }
    if config.max_time.is_some_and(|max| now.elapsed >= max) {
        return Some(ExitReason::MaxTime);
    }
    if config.max_jobs.is_some_and(|max| now.reserved >= max) {
        return Some(ExitReason::MaxJobs);
    }
    if config.once && now.reserved > 0 {
        return Some(ExitReason::Once);
    }
    if config
        .memory_mb
        .is_some_and(|max| rss_mb().is_some_and(|rss| rss >= max))
    {
        return Some(ExitReason::Memory);
    }
    None
}

/// How many jobs the next reservation may take with `free` slots, within `--max-jobs` and
/// `--once`.
pub(crate) fn reservation_limit(config: &WorkerConfig, free: usize, reserved: u64) -> usize {
    let mut limit = free;
    if let Some(max) = config.max_jobs {
        limit = limit.min((max - reserved) as usize);
    }
    if config.once {
        limit = 1;
    }
    limit
}

/// Waits for running jobs. A shutdown signal (now or during the wait) gives them `grace`, after
/// which they are handed back; a second signal hands them back at once (D-10).
pub(crate) async fn drain(
    running: &mut JoinSet<()>,
    shutdown: &ShutdownHandle,
    rx: &mut watch::Receiver<Shutdown>,
    grace: Duration,
) {
    let all_done = async { while running.join_next().await.is_some() {} };
    tokio::pin!(all_done);
    tokio::select! {
        () = &mut all_done => return,
        () = reached(rx, Shutdown::Graceful) => {}
    }
    tracing::info!(
        grace_ms = grace.as_millis() as u64,
        "waiting for running jobs"
    );
    tokio::select! {
        () = &mut all_done => return,
        () = tokio::time::sleep(grace) => shutdown.request(Shutdown::Immediate),
        () = reached(rx, Shutdown::Immediate) => {}
    }
    all_done.await;
}

/// Resident set size of this process in MB, where the OS tells.
pub(crate) fn rss_mb() -> Option<u64> {
    memory_stats::memory_stats().map(|m| m.physical_mem as u64 / (1024 * 1024))
}

/// This machine's name, as workers (and supervisors) register under it.
pub fn hostname() -> String {
    let name = gethostname::gethostname()
        .to_string_lossy()
        .trim()
        .to_string();
    if name.is_empty() {
        "localhost".to_string()
    } else {
        name
    }
}

/// Capped exponential backoff for reconnecting to the store (D-3): 100 ms doubling to 10 s.
pub(crate) fn reconnect_delay(failures: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << failures.min(7))).min(Duration::from_secs(10))
}
