//! What runs beside the worker loop: its registration with the store, the heartbeat that keeps
//! its lease, the maintenance task and the schedule tickers; started before the loop takes
//! jobs and stopped after it has drained.

use std::{future::Future, sync::Arc};

use tokio::{sync::watch, task::JoinHandle};

use super::{
    ShutdownHandle, WorkerConfig, WorkerError,
    control::{ControlView, ControlWatch},
    execute::Tally,
    heartbeat::{Heartbeat, Lease},
    lifecycle::{ExitReason, Shutdown, reconnect_delay},
    maintenance,
};
use crate::store::{Store, StoreError, StoreResult, WorkerInfo};

/// The worker's running services.
pub(crate) struct Services {
    heartbeat: Heartbeat,
    control: ControlWatch,
    lease: Lease,
    maintenance: JoinHandle<()>,
    tally: Arc<Tally>,
    #[cfg(feature = "schedule")]
    tickers: Vec<JoinHandle<()>>,
}

impl Services {
    /// Registers the worker, waiting out store outages, and starts its services. `Err` is
    /// why it stops before taking anything: a shutdown requested before the store could be
    /// reached, or `max_workers` live workers already serving its queues.
    pub(crate) async fn start(
        store: &Arc<dyn Store>,
        info: &WorkerInfo,
        config: &Arc<WorkerConfig>,
        shutdown: &ShutdownHandle,
        tally: &Arc<Tally>,
    ) -> Result<Result<Services, ExitReason>, WorkerError> {
        let registered = with_reconnect(shutdown, || async {
            match config.max_workers {
                Some(max) => store.register_worker_within(info, config.lease, max).await,
                None => store
                    .register_worker(info, config.lease)
                    .await
                    .map(|()| true),
            }
        })
        .await?;
        match registered {
            None => return Ok(Err(ExitReason::Signal)),
            Some(false) => {
                let max = config.max_workers.unwrap_or_default();
                tracing::info!(
                    worker = %info.id,
                    queues = ?config.queues,
                    "{max} live worker(s) already serve these queues (--max-workers {max}): not starting"
                );
                return Ok(Err(ExitReason::Crowded));
            }
            Some(true) => {}
        }
        let lease = Lease::new(config.lease);
        let start_epoch = with_reconnect(shutdown, || store.restart_epoch())
            .await?
            .unwrap_or(0);
        let heartbeat = Heartbeat::start(store.clone(), info.clone(), lease.clone(), start_epoch)
            .map_err(|e| {
            WorkerError::Config(format!("cannot start the heartbeat thread: {e}"))
        })?;
        let control = ControlWatch::start(store.clone(), info.id.clone()).await;
        let maintenance = maintenance::start(
            store.clone(),
            config.clone(),
            tally.clone(),
            info.id.clone(),
        );
        #[cfg(feature = "schedule")]
        let tickers = config
            .schedules
            .iter()
            .map(|p| {
                let spool = ticker_spool(store, config);
                tokio::spawn(crate::schedule::run(spool, p.clone(), info.id.clone()))
            })
            .collect();
        Ok(Ok(Services {
            heartbeat,
            control,
            lease,
            maintenance,
            tally: tally.clone(),
            #[cfg(feature = "schedule")]
            tickers,
        }))
    }

    /// Becomes true when `spool restart` was signalled after the worker started.
    pub(crate) fn restart(&self) -> watch::Receiver<bool> {
        self.heartbeat.restart.clone()
    }

    /// What the operator tells this worker: paused queues, quiet, terminate.
    pub(crate) fn control(&self) -> watch::Receiver<ControlView> {
        self.control.subscribe()
    }

    /// Whether the worker still holds its lease.
    pub(crate) fn lease(&self) -> Lease {
        self.lease.clone()
    }

    /// Stops the services and deregisters the worker.
    pub(crate) async fn stop(self, store: &dyn Store, worker_id: &str) {
        self.maintenance.abort();
        maintenance::write_metrics(store, &self.tally).await;
        if let Err(e) = store
            .delete_record(crate::store::RecordKind::Capacity, worker_id)
            .await
        {
            tracing::debug!("removing this worker's capacity record: {e}");
        }
        #[cfg(feature = "schedule")]
        self.tickers.iter().for_each(|t| t.abort());
        let heartbeat = self.heartbeat;
        let _ = tokio::task::spawn_blocking(move || heartbeat.stop()).await;
        // Hands back anything still held (e.g. settlements that could not be written).
        if let Err(e) = store.deregister_worker(worker_id).await {
            tracing::warn!("could not deregister; the reaper will return this worker's jobs: {e}");
        }
    }
}

/// Runs a store call, retrying with capped backoff while the store is unavailable (D-3).
/// `Ok(None)` means a shutdown was requested while waiting.
async fn with_reconnect<T, F, Fut>(
    shutdown: &ShutdownHandle,
    mut call: F,
) -> Result<Option<T>, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = StoreResult<T>>,
{
    let mut failures = 0;
    loop {
        match call().await {
            Ok(v) => return Ok(Some(v)),
            Err(e) if e.is_unavailable() => {
                failures += 1;
                tracing::warn!("store unavailable ({failures} in a row), retrying: {e}");
                if shutdown.get() >= Shutdown::Graceful {
                    return Ok(None);
                }
                tokio::time::sleep(reconnect_delay(failures)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The handle a schedule dispatches its ticks through: sealing encrypted job types with the
/// worker's keys, which are the ones its jobs are opened with.
#[cfg(feature = "schedule")]
fn ticker_spool(store: &Arc<dyn Store>, config: &WorkerConfig) -> crate::Spool {
    let spool = crate::Spool::new(store.clone());
    #[cfg(feature = "encryption")]
    if let Some(keyring) = &config.keyring {
        return spool.with_keyring(keyring.clone());
    }
    let _ = config;
    spool
}
