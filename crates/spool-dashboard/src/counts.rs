//! The store's counts, read at most once a second however many pages, streams and scrapes
//! ask: the counts scan the store (each backend counts its rows), so every request computing
//! them would load the store with every open tab. A request is answered from the last
//! snapshot; a stale one is refreshed in the background by one task (no stampede), so no
//! request waits for a refresh except the very first, and the one right after an action
//! (which must show its effect).

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use spool::{
    Store,
    store::{FailedFilter, Stats, StoreError},
};
use tokio::{sync::Mutex, time::Instant};

/// How long a snapshot is fresh.
const FRESH: Duration = Duration::from_secs(1);

/// The counts every page reads.
#[derive(Debug)]
pub(crate) struct Snapshot {
    /// The store's stats, paused marks filled in.
    pub(crate) stats: Stats,
    /// Failed records per queue.
    pub(crate) failed: BTreeMap<String, u64>,
}

/// The shared snapshot.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    last: Mutex<Option<(Instant, Arc<Snapshot>)>>,
    refreshing: AtomicBool,
}

impl Counts {
    /// The last snapshot (refreshed in the background when older than a second), or a new
    /// one when there is none.
    pub(crate) async fn get(
        self: &Arc<Self>,
        store: &Arc<dyn Store>,
    ) -> Result<Arc<Snapshot>, StoreError> {
        let mut last = self.last.lock().await;
        match &*last {
            Some((at, snapshot)) => {
                if at.elapsed() >= FRESH && !self.refreshing.swap(true, Ordering::AcqRel) {
                    let (counts, store) = (self.clone(), store.clone());
                    tokio::spawn(async move {
                        match read(&*store).await {
                            Ok(fresh) => {
                                *counts.last.lock().await = Some((Instant::now(), Arc::new(fresh)));
                            }
                            Err(e) => tracing::debug!("dashboard: cannot refresh the counts: {e}"),
                        }
                        counts.refreshing.store(false, Ordering::Release);
                    });
                }
                Ok(snapshot.clone())
            }
            None => {
                let snapshot = Arc::new(read(&**store).await?);
                *last = Some((Instant::now(), snapshot.clone()));
                Ok(snapshot)
            }
        }
    }

    /// Forgets the snapshot, so that the page an action reloads shows its effect.
    pub(crate) async fn invalidate(&self) {
        *self.last.lock().await = None;
    }
}

async fn read(store: &dyn Store) -> Result<Snapshot, StoreError> {
    let stats = store.stats().await?.with_control(&store.control().await?);
    let mut failed = BTreeMap::new();
    for q in &stats.queues {
        let filter = FailedFilter {
            queue: Some(q.name.clone()),
            limit: Some(1),
        };
        failed.insert(q.name.clone(), store.failed_jobs(&filter).await?.1);
    }
    Ok(Snapshot { stats, failed })
}
