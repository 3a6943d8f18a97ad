//! Writes a call's job does not wait for: what an answer taught about its key (the usage
//! correction, the headers' limits). Answers that arrive together would otherwise queue
//! their jobs behind one another's compare-and-set on the same key; the admission of the
//! next call does not need them to be exact (it reserved the estimate, which is never
//! less than what the call may use).

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
