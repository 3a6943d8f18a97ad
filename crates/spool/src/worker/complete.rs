//! Settlements are batched: whatever finished while the previous store call ran goes into the
//! next one, so a busy worker settles hundreds of jobs per round trip (River's job completer).

use std::sync::Arc;

use tokio::{sync::mpsc, task::JoinHandle};

use super::lifecycle::reconnect_delay;
use crate::store::{Settlement, Store};

const MAX_BATCH: usize = 1000;

/// The completer task and its inbox.
pub(crate) struct Completer {
    tx: mpsc::UnboundedSender<Settlement>,
    task: JoinHandle<()>,
}

impl Completer {
    pub(crate) fn start(store: Arc<dyn Store>, worker_id: String) -> Completer {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(store, worker_id, rx));
        Completer { tx, task }
    }

    pub(crate) fn sender(&self) -> mpsc::UnboundedSender<Settlement> {
        self.tx.clone()
    }

    /// Settles everything still queued, then ends.
    pub(crate) async fn finish(self) {
        drop(self.tx);
        if let Err(e) = self.task.await {
            tracing::error!("the completer stopped unexpectedly: {e}");
        }
    }
}

async fn run(
    store: Arc<dyn Store>,
    worker_id: String,
    mut rx: mpsc::UnboundedReceiver<Settlement>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        settle(store.as_ref(), &worker_id, &batch).await;
        batch.clear();
    }
}

/// Settles one batch, retrying while the store is unreachable (D-3): a result is never dropped
/// because of a lost connection. If it cannot be written at all, the jobs stay reserved and
/// return to the queue with the worker's lease: at-least-once, never lost.
async fn settle(store: &dyn Store, worker_id: &str, batch: &[Settlement]) {
    let mut failures = 0u32;
    loop {
        match store.settle(worker_id, batch).await {
            Ok(applied) => {
                for (settlement, ok) in batch.iter().zip(applied) {
                    if !ok {
                        tracing::warn!(
                            job = settlement.id(),
                            "result dropped: this worker no longer holds the job (its lease expired)"
                        );
                    }
                }
                return;
            }
            Err(e) if e.is_unavailable() || failures < 5 => {
                failures += 1;
                tracing::warn!(
                    jobs = batch.len(),
                    "settling failed ({failures} in a row), retrying: {e}"
                );
                tokio::time::sleep(reconnect_delay(failures)).await;
            }
            Err(e) => {
                tracing::error!(
                    jobs = batch.len(),
                    "settling failed for good; the jobs return to the queue when the lease ends: {e}"
                );
                return;
            }
        }
    }
}
