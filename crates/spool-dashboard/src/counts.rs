//! The store's counts, read at most once a second however many pages, streams and scrapes
//! ask: the counts scan the store (each backend counts its rows), so every request computing
//! them would load the store with every open tab. One snapshot serves all requests for a
//! second; concurrent requests for a stale one wait for a single read (no stampede). The
//! live stream sends every 2 seconds, so pages are never staler than that.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use spool::{
    Store,
    store::{FailedFilter, Stats, StoreError},
};
use tokio::{sync::Mutex, time::Instant};

/// How long a snapshot serves.
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
}

impl Counts {
    /// A snapshot at most a second old.
    pub(crate) async fn get(&self, store: &dyn Store) -> Result<Arc<Snapshot>, StoreError> {
        let mut last = self.last.lock().await;
        if let Some((at, snapshot)) = &*last
            && at.elapsed() < FRESH
        {
            return Ok(snapshot.clone());
        }
        let snapshot = Arc::new(read(store).await?);
        *last = Some((Instant::now(), snapshot.clone()));
        Ok(snapshot)
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
