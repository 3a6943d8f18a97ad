//! Helpers for apps' own tests: a fake [`Spool`](crate::Spool) that records dispatches.
//!
//! ```
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Serialize, Deserialize, Debug, PartialEq)] struct Welcome { user: u64 }
//! # impl spool::Job for Welcome {
//! #     const NAME: &'static str = "welcome";
//! #     async fn handle(self, _: spool::JobContext) -> spool::JobResult { Ok(()) }
//! # }
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let (spool, recorder) = spool::Spool::fake();
//! spool.dispatch(Welcome { user: 7 }).on_queue("mail").await.unwrap();
//! assert_eq!(recorder.dispatched::<Welcome>(), vec![Welcome { user: 7 }]);
//! assert_eq!(recorder.on_queue("mail").len(), 1);
//! # }
//! ```

use std::{sync::Mutex, time::Duration};

use crate::{envelope::Envelope, job::Job};

/// Records what a fake `Spool` was asked to dispatch.
#[derive(Debug, Default)]
pub struct Recorder {
    dispatched: Mutex<Vec<(Envelope, Duration)>>,
}

impl Recorder {
    pub(crate) fn record(&self, envelope: Envelope, delay: Duration) {
        self.lock().push((envelope, delay));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Envelope, Duration)>> {
        self.dispatched
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every recorded envelope with its delay, in dispatch order.
    pub fn all(&self) -> Vec<(Envelope, Duration)> {
        self.lock().clone()
    }

    /// The recorded jobs of type `J`, decoded.
    pub fn dispatched<J: Job>(&self) -> Vec<J> {
        self.lock()
            .iter()
            .filter(|(e, _)| e.job == J::NAME)
            .filter_map(|(e, _)| serde_json::from_str(e.payload.plain()?).ok())
            .collect()
    }

    /// The recorded envelopes sent to `queue`.
    pub fn on_queue(&self, queue: &str) -> Vec<Envelope> {
        self.lock()
            .iter()
            .filter(|(e, _)| e.queue == queue)
            .map(|(e, _)| e.clone())
            .collect()
    }

    /// Panics unless at least one job of type `J` was dispatched.
    pub fn assert_dispatched<J: Job>(&self) {
        assert!(
            self.lock().iter().any(|(e, _)| e.job == J::NAME),
            "expected a `{}` job to be dispatched; dispatched: {:?}",
            J::NAME,
            self.lock()
                .iter()
                .map(|(e, _)| e.job.clone())
                .collect::<Vec<_>>()
        );
    }

    /// Panics if anything was dispatched.
    pub fn assert_nothing_dispatched(&self) {
        let jobs: Vec<String> = self.lock().iter().map(|(e, _)| e.job.clone()).collect();
        assert!(jobs.is_empty(), "expected no dispatches, got {jobs:?}");
    }
}
