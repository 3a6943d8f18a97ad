//! The worker's lease, kept alive from a dedicated OS thread with its own runtime and its own
//! store connections, so handlers that block or hog the main runtime cannot starve it (D-1).

use std::{sync::Arc, thread::JoinHandle, time::Duration};

use tokio::sync::{oneshot, watch};

use super::lifecycle::reconnect_delay;
use crate::store::{Store, StoreResult, WorkerInfo};

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
        lease: Duration,
        start_epoch: i64,
    ) -> std::io::Result<Heartbeat> {
        let (stop_tx, stop_rx) = oneshot::channel();
        let (restart_tx, restart_rx) = watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("spool-heartbeat".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => return tracing::error!("heartbeat runtime failed to start: {e}"),
                };
                runtime.block_on(beat(store, info, lease, start_epoch, stop_rx, restart_tx));
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

async fn beat(
    shared: Arc<dyn Store>,
    info: WorkerInfo,
    lease: Duration,
    start_epoch: i64,
    mut stop: oneshot::Receiver<()>,
    restart: watch::Sender<bool>,
) {
    let interval = lease / 3;
    let mut store: Option<Arc<dyn Store>> = None;
    let mut failures = 0u32;
    loop {
        let wait = if failures == 0 {
            interval
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
        match handle.heartbeat(&info.id, lease).await {
            Ok(hb) => {
                if failures > 0 {
                    tracing::info!(worker = %info.id, "heartbeat reached the store again");
                }
                failures = 0;
                if !hb.lease_kept {
                    tracing::warn!(
                        worker = %info.id,
                        "lease had expired and this worker's jobs went back to the queue; \
                         results of jobs still running here will be dropped"
                    );
                    if let Err(e) = handle.register_worker(&info, lease).await {
                        tracing::warn!(worker = %info.id, "re-registering failed: {e}");
                    }
                }
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
