//! What a completed job kept in the store while it ran (step outputs, recorded model
//! answers) is deleted once its completion is written: not before, because a completion that
//! never reached the store means the job runs again and must replay what it paid for.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::{background::Background, job::kept_prefixes, store::Store};

/// How long a stopping worker waits for its last deletions (what is left expires by itself).
const STOP_WAIT: Duration = Duration::from_secs(5);

/// Jobs that completed with kept records, and the deletions under way.
pub(crate) struct KeptRecords {
    store: Arc<dyn Store>,
    completed: Mutex<HashSet<String>>,
    deleting: Background,
}

impl KeptRecords {
    pub(crate) fn new(store: Arc<dyn Store>) -> Arc<KeptRecords> {
        Arc::new(KeptRecords {
            store,
            completed: Mutex::default(),
            deleting: Background::default(),
        })
    }

    /// Job `id` completed and kept records: delete them once its completion is written.
    pub(crate) fn completed(&self, id: &str) {
        lock(&self.completed).insert(id.to_string());
    }

    /// Job `id`'s settlement was written (`applied`) or dropped because the worker no longer
    /// held the job (it runs again elsewhere and replays its records, so they stay). If it
    /// completed with records and the completion was applied, they are deleted in the
    /// background.
    pub(crate) fn settled(&self, id: &str, applied: bool) {
        if !lock(&self.completed).remove(id) || !applied {
            return;
        }
        let store = self.store.clone();
        let prefixes = kept_prefixes(id);
        self.deleting.spawn(async move {
            for prefix in prefixes {
                if let Err(e) = store.kv_delete(&prefix).await {
                    // They expire by themselves; nothing is lost by leaving them.
                    tracing::debug!("deleting a completed job's records ({prefix}): {e}");
                }
            }
        });
    }

    /// Waits a little for the deletions under way (the worker is stopping).
    pub(crate) async fn finish(&self) {
        self.deleting.finish(STOP_WAIT).await;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
