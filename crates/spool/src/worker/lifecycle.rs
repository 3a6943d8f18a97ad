//! When a worker stops: shutdown requests, limits, and how it reports its exit.

use std::time::Duration;

use tokio::sync::watch;

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
}

impl ExitReason {
    /// The process exit code the CLI uses: 12 for memory (as Laravel), else 0.
    pub fn exit_code(self) -> u8 {
        if self == ExitReason::Memory { 12 } else { 0 }
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

/// Resident set size of this process in MB, where the OS tells (Linux).
pub(crate) fn rss_mb() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096 / (1024 * 1024))
}

pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Capped exponential backoff for reconnecting to the store (D-3): 100 ms doubling to 10 s.
pub(crate) fn reconnect_delay(failures: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << failures.min(7))).min(Duration::from_secs(10))
}
