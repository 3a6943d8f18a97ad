//! Settlements wait here until the fetcher's next round trip carries them to the store together
//! with its next reservation (one transaction: ack batch k, claim batch k+1). Every finished job
//! frees a slot, which wakes the fetcher, so a settlement never waits long.
//!
//! [`Settlements`] is the one place that writes settlements to the store: with a reservation,
//! alone in a round that reserves nothing, and what is left when the worker stops.

use crate::store::Claim;
use tokio::sync::mpsc;

use super::lifecycle::reconnect_delay;
use crate::store::{QueueStore, ReservedJob, Settlement, StoreResult};

/// Finished jobs' settlements not yet written.
pub(crate) struct Settlements {
    tx: mpsc::UnboundedSender<Settlement>,
    rx: mpsc::UnboundedReceiver<Settlement>,
    pending: Vec<Settlement>,
}

impl Settlements {
    pub(crate) fn new() -> Settlements {
        let (tx, rx) = mpsc::unbounded_channel();
        Settlements {
            tx,
            rx,
            pending: Vec::new(),
        }
    }

    /// Where an executor sends its job's settlement.
    pub(crate) fn sender(&self) -> mpsc::UnboundedSender<Settlement> {
        self.tx.clone()
    }

    /// Everything finished so far (kept until [`Settlements::written`]).
    pub(crate) fn collect(&mut self) -> &[Settlement] {
        while let Ok(s) = self.rx.try_recv() {
            self.pending.push(s);
        }
        &self.pending
    }

    /// Waits until a settlement arrives (it is kept for the next `collect`).
    pub(crate) async fn arrived(&mut self) {
        if let Some(s) = self.rx.recv().await {
            self.pending.push(s);
        }
    }

    /// Writes what finished and reserves what `claim` asks for in the same round trip (the hot
    /// path). On an error the settlements stay pending for the next round.
    pub(crate) async fn settle_and_reserve(
        &mut self,
        store: &dyn QueueStore,
        claim: Claim<'_>,
    ) -> StoreResult<Vec<ReservedJob>> {
        self.collect();
        let (applied, jobs) = store.settle_and_reserve(&self.pending, claim).await?;
        self.written(&applied);
        Ok(jobs)
    }

    /// Writes what finished, if anything, in a round that reserves nothing. On an error the
    /// settlements stay pending for the next round.
    pub(crate) async fn settle(
        &mut self,
        store: &dyn QueueStore,
        worker_id: &str,
    ) -> StoreResult<()> {
        if self.collect().is_empty() {
            return Ok(());
        }
        self.write(store, worker_id).await
    }

    async fn write(&mut self, store: &dyn QueueStore, worker_id: &str) -> StoreResult<()> {
        let applied = store.settle(worker_id, &self.pending).await?;
        self.written(&applied);
        Ok(())
    }

    /// The store wrote the pending settlements; `applied` says which still held their job.
    fn written(&mut self, applied: &[bool]) {
        for (settlement, ok) in self.pending.iter().zip(applied) {
            if !ok {
                tracing::warn!(
                    job = settlement.id(),
                    "result dropped: this worker no longer holds the job (its lease expired)"
                );
            }
        }
        self.pending.clear();
    }

    /// Writes what is left before the worker exits, retrying while the store is unreachable
    /// (D-3). If it cannot be written at all, the jobs stay reserved and return to the queue
    /// with the worker's lease: at-least-once, never lost.
    pub(crate) async fn flush(&mut self, store: &dyn QueueStore, worker_id: &str) {
        self.collect();
        if self.pending.is_empty() {
            return;
        }
        let mut failures = 0u32;
        loop {
            match self.write(store, worker_id).await {
                Ok(()) => return,
                Err(e) if e.is_unavailable() || failures < 5 => {
                    failures += 1;
                    tracing::warn!(
                        jobs = self.pending.len(),
                        "settling failed ({failures} in a row), retrying: {e}"
                    );
                    tokio::time::sleep(reconnect_delay(failures)).await;
                }
                Err(e) => {
                    tracing::error!(
                        jobs = self.pending.len(),
                        "settling failed for good; the jobs return to the queue when the lease ends: {e}"
                    );
                    return;
                }
            }
        }
    }
}
