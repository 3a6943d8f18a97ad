//! Wake-ups for idle workers: a counter bumped whenever jobs may have arrived.
//!
//! A worker keeps one [`Wakeups`] for its lifetime, so a push that lands between an empty
//! reserve and the wait is never missed: `wait` returns at once if anything was signalled since
//! the previous wait.

use std::{sync::Arc, time::Duration};

use tokio::sync::watch;

/// The sending side, held by a store.
#[derive(Debug, Clone)]
pub struct WakeupSignal {
    tx: Arc<watch::Sender<u64>>,
}

impl Default for WakeupSignal {
    fn default() -> Self {
        WakeupSignal {
            tx: Arc::new(watch::channel(0).0),
        }
    }
}

impl WakeupSignal {
    /// Tells every subscriber that jobs may be available.
    pub fn notify(&self) {
        self.tx.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A new subscription.
    pub fn subscribe(&self) -> Wakeups {
        Wakeups {
            rx: Some(self.tx.subscribe()),
        }
    }
}

/// The receiving side, held by a worker.
#[derive(Debug)]
pub struct Wakeups {
    rx: Option<watch::Receiver<u64>>,
}

impl Wakeups {
    /// Wake-ups that never come: waiting just sleeps (polling stores).
    pub fn none() -> Self {
        Wakeups { rx: None }
    }

    /// Waits for a signal sent since the last wait, or for `timeout`. Returns whether a
    /// signal arrived.
    pub async fn wait(&mut self, timeout: Duration) -> bool {
        match &mut self.rx {
            Some(rx) => matches!(
                tokio::time::timeout(timeout, rx.changed()).await,
                Ok(Ok(()))
            ),
            None => {
                tokio::time::sleep(timeout).await;
                false
            }
        }
    }
}
