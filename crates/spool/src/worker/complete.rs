//! Settlements wait here until the fetcher's next round trip carries them to the store together
//! with its next reservation (one transaction: ack batch k, claim batch k+1). Every finished job
//! frees a slot, which wakes the fetcher, so a settlement never waits long.
//!
//! [`Settlements`] is the one place that writes settlements to the store: with a reservation,
//! alone in a round that reserves nothing, and what is left when the worker stops.

use std::sync::Arc;

use crate::store::{Claim, StoreError};
use tokio::sync::{mpsc, watch};

use super::{
    lifecycle::{Shutdown, reconnect_delay},
    records::KeptRecords,
};
use crate::store::{QueueStore, ReservedJob, Settlement, StoreResult};

/// Longest store error quoted in the failed record of a job whose settlement was refused.
const MAX_REFUSAL_TEXT: usize = 1000;

/// Finished jobs' settlements not yet written.
pub(crate) struct Settlements {
    tx: mpsc::UnboundedSender<Settlement>,
    rx: mpsc::UnboundedReceiver<Settlement>,
    pending: Vec<Settlement>,
    /// Told of every settlement written, so completed jobs' kept records go.
    records: Arc<KeptRecords>,
}

impl Settlements {
    pub(crate) fn new(records: Arc<KeptRecords>) -> Settlements {
        let (tx, rx) = mpsc::unbounded_channel();
        Settlements {
            tx,
            rx,
            pending: Vec::new(),
            records,
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
        match store.settle_and_reserve(&self.pending, claim).await {
            Ok((applied, jobs)) => {
                self.written(&applied);
                Ok(jobs)
            }
            Err(e) => {
                self.isolate(store, claim.worker_id, e, true).await?;
                Ok(Vec::new())
            }
        }
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
        match store.settle(worker_id, &self.pending).await {
            Ok(applied) => {
                self.written(&applied);
                Ok(())
            }
            Err(e) => self.isolate(store, worker_id, e, false).await,
        }
    }

    /// After a write failed with `error`. A transient error leaves every settlement pending
    /// for the next round. Any other may be one settlement the store refuses whatever happens
    /// (resent forever, it would stall the worker), so they are written one at a time: the
    /// refused one fails with the store's reason and the others are written. `Ok` when one was
    /// found or when the write `claimed` nothing; else the original error (the reservation,
    /// not a settlement, failed).
    async fn isolate(
        &mut self,
        store: &dyn QueueStore,
        worker_id: &str,
        error: StoreError,
        claimed: bool,
    ) -> StoreResult<()> {
        if error.is_unavailable() || self.pending.is_empty() {
            return Err(error);
        }
        let mut refused = false;
        let mut rest = std::mem::take(&mut self.pending).into_iter();
        while let Some(settlement) = rest.next() {
            match store
                .settle(worker_id, std::slice::from_ref(&settlement))
                .await
            {
                Ok(applied) => {
                    dropped_unless_applied(&settlement, &applied);
                    self.records
                        .settled(settlement.id(), applied.first() == Some(&true));
                }
                Err(e) if e.is_unavailable() => {
                    self.pending.push(settlement);
                    self.pending.extend(rest);
                    return Err(e);
                }
                Err(e) => {
                    refused = true;
                    fail_refused(store, worker_id, &settlement, &e).await;
                }
            }
        }
        if refused || !claimed {
            Ok(())
        } else {
            Err(error)
        }
    }

    /// The store wrote the pending settlements; `applied` says which still held their job.
    fn written(&mut self, applied: &[bool]) {
        for (settlement, ok) in self.pending.iter().zip(applied) {
            dropped_unless_applied(settlement, std::slice::from_ref(ok));
            self.records.settled(settlement.id(), *ok);
        }
        self.pending.clear();
    }

    /// Drops every unwritten settlement (the worker lost its lease).
    pub(crate) fn abandon(&mut self) {
        self.collect();
        self.pending.clear();
    }

    /// Writes what is left before the worker exits, retrying while the store is unreachable
    /// (D-3). If it cannot be written at all, the jobs stay reserved and return to the queue
    /// with the worker's lease: at-least-once, never lost.
    /// A second stop signal (`Shutdown::Immediate`) ends the retrying: the worker always stops.
    pub(crate) async fn flush(
        &mut self,
        store: &dyn QueueStore,
        worker_id: &str,
        shutdown: &mut watch::Receiver<Shutdown>,
    ) {
        self.collect();
        self.flush_pending(store, worker_id, shutdown).await;
        self.records.finish().await;
    }

    async fn flush_pending(
        &mut self,
        store: &dyn QueueStore,
        worker_id: &str,
        shutdown: &mut watch::Receiver<Shutdown>,
    ) {
        if self.pending.is_empty() {
            return;
        }
        let mut failures = 0u32;
        loop {
            match self.write(store, worker_id).await {
                Ok(()) => return,
                Err(e) if e.is_unavailable() && *shutdown.borrow() < Shutdown::Immediate => {
                    failures += 1;
                    tracing::warn!(
                        jobs = self.pending.len(),
                        "settling failed ({failures} in a row), retrying until a second stop signal: {e}"
                    );
                    tokio::select! {
                        () = tokio::time::sleep(reconnect_delay(failures)) => {}
                        () = super::lifecycle::reached(shutdown, Shutdown::Immediate) => {}
                    }
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

/// Warns when the store says the worker no longer held a settled job.
fn dropped_unless_applied(settlement: &Settlement, applied: &[bool]) {
    if applied.first() == Some(&false) {
        tracing::warn!(
            job = settlement.id(),
            "result dropped: this worker no longer holds the job (its lease expired)"
        );
    }
}

/// Fails a job whose settlement the store refused, with the store's reason and nothing else
/// of the original settlement (which is what the store could not take). If even that is
/// refused, the job stays held until the worker stops and hands it back.
async fn fail_refused(
    store: &dyn QueueStore,
    worker_id: &str,
    settlement: &Settlement,
    error: &StoreError,
) {
    let mut reason = error.to_string();
    if reason.len() > MAX_REFUSAL_TEXT {
        let mut end = MAX_REFUSAL_TEXT;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    tracing::error!(
        job = settlement.id(),
        "the store refused this job's settlement; failing it: {reason}"
    );
    let fail = Settlement::fail(
        settlement.id(),
        settlement.token(),
        format!("the store refused this job's settlement: {reason}"),
        Vec::new(),
    );
    if let Err(e) = store.settle(worker_id, &[fail]).await {
        tracing::error!(
            job = settlement.id(),
            "the store refused failing it too; it returns to the queue when the worker stops: {e}"
        );
    }
}
