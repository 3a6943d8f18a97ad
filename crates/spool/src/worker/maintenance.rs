//! Housekeeping every worker does: return the jobs of dead workers (the reaper) and prune what
//! would otherwise grow for ever: old failed records, kept results, completed jobs' records
//! (every minute), finished batches and the
//! limiter hits of idle keys, expired shared values and old metrics. Any worker may do it; the store makes each step
//! atomic. It also records each queue's recent mean run time, which supervisors use to size
//! `auto` pools, and writes the worker's metrics once a minute.

use std::{sync::Arc, time::Duration};

use tokio::task::JoinHandle;

use super::{WorkerConfig, execute::Tally};
use crate::store::{BatchPrune, RecordKind, Store};

const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// How often completed jobs' records are pruned: they come with every completion, so an hour's
/// worth would be a large delete, and the history would hold up to twice its retention.
const HISTORY_PRUNE_EVERY: Duration = Duration::from_secs(60);

/// How often a worker writes its folded metrics: one small write a minute, whatever it runs.
const METRICS_EVERY: Duration = Duration::from_secs(60);

/// How long a worker's capacity record lasts unless renewed (it is, with every metrics write).
const CAPACITY_LASTS: Duration = Duration::from_secs(180);

pub(crate) fn start(
    store: Arc<dyn Store>,
    config: Arc<WorkerConfig>,
    tally: Arc<Tally>,
    worker_id: String,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let capacity = i64::try_from(config.concurrency).unwrap_or(i64::MAX);
        let note_capacity = || async {
            // Renewed with every metrics write; a crashed worker's record expires.
            let expires = crate::now_ms() + CAPACITY_LASTS.as_millis() as i64;
            if let Err(e) = store
                .put_record(
                    RecordKind::Capacity,
                    &worker_id,
                    capacity,
                    Some(&expires.to_string()),
                )
                .await
            {
                tracing::debug!("recording this worker's capacity: {e}");
            }
        };
        note_capacity().await;
        // Reap at a third of the lease, so a dead worker's jobs return within about
        // 1.33 leases of its last heartbeat.
        let every = (config.lease / 3).max(Duration::from_millis(100));
        let mut last_prune: Option<tokio::time::Instant> = None;
        let mut last_history_prune: Option<tokio::time::Instant> = None;
        let mut last_metrics = tokio::time::Instant::now();
        loop {
            match store.reap(config.max_recoveries).await {
                Ok(r) if r.recovered > 0 || r.failed > 0 => tracing::warn!(
                    recovered = r.recovered,
                    failed = r.failed,
                    "returned the jobs of workers whose lease expired"
                ),
                Ok(_) => {}
                Err(e) => tracing::debug!("reaper: {e}"),
            }
            if last_history_prune.is_none_or(|t| t.elapsed() >= HISTORY_PRUNE_EVERY) {
                last_history_prune = Some(tokio::time::Instant::now());
                if let Err(e) = store.prune_completed(config.history_retention).await {
                    tracing::debug!("pruning completed jobs' records: {e}");
                }
            }
            if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                last_prune = Some(tokio::time::Instant::now());
                if let Err(e) = store.prune_failed(config.failed_retention).await {
                    tracing::debug!("pruning failed records: {e}");
                }
                if let Err(e) = store.prune_results(config.result_retention).await {
                    tracing::debug!("pruning kept results: {e}");
                }
                let batches = BatchPrune {
                    finished: Some(config.batch_retention),
                    unfinished: None,
                    cancelled: Some(config.batch_retention),
                };
                if let Err(e) = store.prune_batches(batches).await {
                    tracing::debug!("pruning finished batches: {e}");
                }
                if let Err(e) = store.prune_limits().await {
                    tracing::debug!("pruning expired limiter hits: {e}");
                }
                if let Err(e) = store.kv_prune().await {
                    tracing::debug!("pruning expired shared values: {e}");
                }
                if let Err(e) = store.prune_metrics(crate::now_ms()).await {
                    tracing::debug!("pruning old metrics: {e}");
                }
                if let Err(e) = prune_capacities(&*store).await {
                    tracing::debug!("pruning the capacities of gone workers: {e}");
                }
            }
            if last_metrics.elapsed() >= METRICS_EVERY {
                last_metrics = tokio::time::Instant::now();
                write_metrics(&*store, &tally).await;
                note_capacity().await;
            }
            // Each queue's recent mean run time, for supervisors sizing `auto` pools.
            for (queue, micros) in tally.metrics.take_mean_runs() {
                if let Err(e) = store
                    .put_record(RecordKind::RunTime, &queue, micros, None)
                    .await
                {
                    tracing::debug!("recording run times: {e}");
                }
            }
            // Jitter keeps many workers from reaping in lockstep.
            tokio::time::sleep(every.mul_f64(0.75 + fastrand::f64() / 2.0)).await;
        }
    })
}

/// Deletes the expired capacity records of workers that are gone (a crashed worker leaves its
/// own), by their expiry: no count of the store's workers or jobs needed.
async fn prune_capacities(store: &dyn Store) -> crate::store::StoreResult<()> {
    let now = crate::now_ms();
    for record in store.records(RecordKind::Capacity).await? {
        let expires = record.info.as_deref().and_then(|i| i.parse::<i64>().ok());
        if expires.is_none_or(|at| at < now) {
            store
                .delete_record(RecordKind::Capacity, &record.name)
                .await?;
        }
    }
    Ok(())
}

/// Writes the metrics folded since the last write; what cannot be written now is kept for the
/// next one.
pub(crate) async fn write_metrics(store: &dyn Store, tally: &Tally) {
    let records = tally.metrics.take();
    if records.is_empty() {
        return;
    }
    if let Err(e) = store.record_metrics(&records).await {
        tracing::debug!("writing metrics, kept for the next write: {e}");
        tally.metrics.put_back(records);
    }
}
