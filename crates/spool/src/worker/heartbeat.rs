//! The worker's lease, kept alive from a dedicated OS thread with its own runtime and its own
//! store connections, so handlers that block or hog the main runtime cannot starve it (D-1).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use tokio::sync::{oneshot, watch};

use super::lifecycle::reconnect_delay;
use crate::store::{Store, StoreResult, WorkerInfo};

/// Whether the worker still holds its lease, as the heartbeat last saw it (D-1). The lease
/// counts as lost when no heartbeat succeeded for two thirds of it (so the worker stops before
/// the reaper can hand its jobs to another), when the store says it had expired, or when the
/// heartbeat's thread died.
#[derive(Clone)]
pub(crate) struct Lease {
    state: Arc<LeaseState>,
}

struct LeaseState {
    lease: Duration,
    started: Instant,
    /// When the last heartbeat (or the registration) succeeded, in ms after `started`.
    renewed_ms: AtomicU64,
    /// The store said the lease had expired.
    expired: AtomicBool,
    /// A gap between heartbeats passed the limit: lost for good, even if a later heartbeat
    /// succeeds (the worker cannot know whether its jobs were handed on meanwhile).
    lapsed: AtomicBool,
    /// The heartbeat's thread ended while the worker ran.
    dead: AtomicBool,
}

impl Lease {
    /// A lease just taken by registering.
    pub(crate) fn new(lease: Duration) -> Lease {
        Lease {
            state: Arc::new(LeaseState {
                lease,
                started: Instant::now(),
                renewed_ms: AtomicU64::new(0),
                expired: AtomicBool::new(false),
                lapsed: AtomicBool::new(false),
                dead: AtomicBool::new(false),
            }),
        }
    }

    /// Now, as the lease counts time.
    fn now(&self) -> Duration {
        self.state.started.elapsed()
    }

    /// A heartbeat sent at `sent` succeeded. The store's lease runs from when it ran the
    /// heartbeat, which is after it was sent, so counting from `sent` is on the safe side.
    fn renewed(&self, sent: Duration) {
        let previous = Duration::from_millis(self.state.renewed_ms.load(Ordering::SeqCst));
        if sent.saturating_sub(previous) > self.limit() {
            self.state.lapsed.store(true, Ordering::SeqCst);
        }
        let ms = sent.as_millis() as u64;
        self.state.renewed_ms.fetch_max(ms, Ordering::SeqCst);
    }

    /// The longest the worker goes on without a successful heartbeat: two thirds of the lease,
    /// leaving the last third for a running job's result to be written before the reaper may
    /// act.
    fn limit(&self) -> Duration {
        self.state.lease * 2 / 3
    }

    /// Why the lease is lost, if it is.
    pub(crate) fn lost(&self) -> Option<&'static str> {
        let s = &self.state;
        if s.dead.load(Ordering::SeqCst) {
            return Some("the heartbeat's thread died");
        }
        if s.expired.load(Ordering::SeqCst) {
            return Some("the store says the lease expired");
        }
        let silent = s
            .started
            .elapsed()
            .saturating_sub(Duration::from_millis(s.renewed_ms.load(Ordering::SeqCst)));
        if silent > self.limit() {
            s.lapsed.store(true, Ordering::SeqCst);
        }
        s.lapsed
            .load(Ordering::SeqCst)
            .then_some("no heartbeat reached the store for 2/3 of the lease")
    }

    /// Resolves once the lease is lost (checked ten times per lease).
    pub(crate) async fn until_lost(&self) {
        while self.lost().is_none() {
            tokio::time::sleep(self.state.lease / 10).await;
        }
    }
}

/// Marks the lease lost when the heartbeat's thread ends, by a panic too, unless it was asked
/// to stop.
struct DeathWatch {
    lease: Lease,
    stopping: bool,
}

impl Drop for DeathWatch {
    fn drop(&mut self) {
        if !self.stopping {
            self.lease.state.dead.store(true, Ordering::SeqCst);
        }
    }
}

/// The running heartbeat; [`Heartbeat::stop`] ends it.
pub(crate) struct Heartbeat {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// Becomes true when the store's restart epoch moves past the one the worker started under.
    pub(crate) restart: watch::Receiver<bool>,
}

impl Heartbeat {
    pub(crate) fn start(
        store: Arc<dyn Store>,
        info: WorkerInfo,
        lease: Lease,
        start_epoch: i64,
    ) -> std::io::Result<Heartbeat> {
        let (stop_tx, stop_rx) = oneshot::channel();
        let (restart_tx, restart_rx) = watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("spool-heartbeat".into())
            .spawn(move || {
                let mut death = DeathWatch {
                    lease: lease.clone(),
                    stopping: false,
                };
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => return tracing::error!("heartbeat runtime failed to start: {e}"),
                };
                runtime.block_on(beat(store, info, lease, start_epoch, stop_rx, restart_tx));
                death.stopping = true;
            })?;
        Ok(Heartbeat {
            stop: Some(stop_tx),
            thread: Some(thread),
            restart: restart_rx,
        })
    }

    /// Stops beating and waits for the thread.
    pub(crate) fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Beats until asked to stop or the lease is found expired.
async fn beat(
    shared: Arc<dyn Store>,
    info: WorkerInfo,
    held: Lease,
    start_epoch: i64,
    mut stop: oneshot::Receiver<()>,
    restart: watch::Sender<bool>,
) {
    let lease = held.state.lease;
    let interval = lease / 3;
    let mut store: Option<Arc<dyn Store>> = None;
    let mut failures = 0u32;
    let mut last_sent = held.now();
    loop {
        // At a fixed rate (the time a heartbeat takes does not add up), so only one slower
        // than a whole interval can make the worker think its lease is lost.
        let wait = if failures == 0 {
            interval.saturating_sub(held.now().saturating_sub(last_sent))
        } else {
            reconnect_delay(failures).min(interval)
        };
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let handle = match connection(&shared, &mut store).await {
            Ok(s) => s,
            Err(e) => {
                failures += 1;
                tracing::warn!(worker = %info.id, "heartbeat cannot reach the store: {e}");
                continue;
            }
        };
        let sent = held.now();
        last_sent = sent;
        match handle.heartbeat(&info.id, lease).await {
            Ok(hb) => {
                if failures > 0 {
                    tracing::info!(worker = %info.id, "heartbeat reached the store again");
                }
                failures = 0;
                if !hb.lease_kept {
                    // Another worker may be running these jobs now: stop, never re-register.
                    tracing::error!(
                        worker = %info.id,
                        "lease had expired and this worker's jobs went back to the queue"
                    );
                    held.state.expired.store(true, Ordering::SeqCst);
                    return;
                }
                held.renewed(sent);
                if hb.restart_epoch != start_epoch {
                    let _ = restart.send(true);
                }
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(worker = %info.id, "heartbeat failed ({failures} in a row): {e}");
                if e.is_unavailable() {
                    store = None;
                }
            }
        }
    }
}

/// The heartbeat's own connection: made on this thread's runtime, opened lazily and again after
/// errors.
async fn connection(
    shared: &Arc<dyn Store>,
    store: &mut Option<Arc<dyn Store>>,
) -> StoreResult<Arc<dyn Store>> {
    if let Some(s) = store {
        return Ok(s.clone());
    }
    let s = shared.reopen().await?;
    *store = Some(s.clone());
    Ok(s)
}
