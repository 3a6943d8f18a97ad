//! Store writes nobody waits for, kept track of so a stopping process can let them finish:
//! an LLM answer's usage (`llm/session.rs`), a completed job's kept records
//! (`worker/records.rs`).

use std::{future::Future, sync::Mutex, time::Duration};

use tokio::task::JoinSet;

/// The writes under way.
#[derive(Debug, Default)]
pub(crate) struct Background {
    tasks: Mutex<JoinSet<()>>,
}

impl Background {
    /// Runs `write` on the current runtime without waiting for it.
    pub(crate) fn spawn(&self, write: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        while tasks.try_join_next().is_some() {}
        tasks.spawn(write);
    }

    /// Waits for the writes under way, at most `limit`.
    pub(crate) async fn finish(&self, limit: Duration) {
        let mut tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        let _ =
            tokio::time::timeout(limit, async { while tasks.join_next().await.is_some() {} }).await;
    }
}
