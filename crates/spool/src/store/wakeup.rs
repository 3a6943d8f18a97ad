//! Wake-ups for idle workers: a counter bumped whenever jobs may have arrived.
//!
//! A worker keeps one [`Wakeups`] for its lifetime, so a push that lands between an empty
//! reserve and the wait is never missed: `wait` returns at once if anything was signalled since
//! the previous wait.
//!
//! The sending side also knows how many subscribers are waiting right now, so a store that has
//! to poll its database for other processes' pushes can poll only while someone would act on
//! the answer.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::sync::{Notify, watch};

#[cfg(any(feature = "postgres", feature = "redis"))]
mod listener;
#[cfg(any(feature = "postgres", feature = "redis"))]
pub(crate) use listener::{Listener, Source, Subscription};

/// The sending side, held by a store.
#[derive(Debug, Clone)]
pub struct WakeupSignal {
    tx: Arc<watch::Sender<u64>>,
    waiting: Arc<Waiting>,
}

/// Subscribers inside [`Wakeups::wait`], and a notification when one enters.
#[derive(Debug, Default)]
struct Waiting {
    count: AtomicUsize,
    entered: Notify,
}

impl Default for WakeupSignal {
    fn default() -> Self {
        WakeupSignal {
            tx: Arc::new(watch::channel(0).0),
            waiting: Arc::default(),
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
            waiting: Some(self.waiting.clone()),
        }
    }

    /// How many subscribers are waiting in [`Wakeups::wait`] right now.
    pub fn waiting(&self) -> usize {
        self.waiting.count.load(Ordering::Acquire)
    }

    /// Returns once at least one subscriber is waiting (at once if one already is).
    pub async fn someone_waiting(&self) {
        loop {
            let entered = self.waiting.entered.notified();
            tokio::pin!(entered);
            // Registered before the check, so an arrival between the check and the await is
            // not missed.
            entered.as_mut().enable();
            if self.waiting() > 0 {
                return;
            }
            entered.await;
        }
    }
}

/// The receiving side, held by a worker.
#[derive(Debug)]
pub struct Wakeups {
    rx: Option<watch::Receiver<u64>>,
    waiting: Option<Arc<Waiting>>,
}

impl Wakeups {
    /// Wake-ups that never come: waiting just sleeps (polling stores).
    pub fn none() -> Self {
        Wakeups {
            rx: None,
            waiting: None,
        }
    }

    /// Waits for a signal sent since the last wait, or for `timeout`. Returns whether a
    /// signal arrived.
    pub async fn wait(&mut self, timeout: Duration) -> bool {
        // Counted while inside, also when the caller drops this future (a `select!`).
        let _inside = self.waiting.as_deref().map(Inside::enter);
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

/// One subscriber inside `wait`; leaving is counted on drop.
struct Inside<'a>(&'a Waiting);

impl<'a> Inside<'a> {
    fn enter(waiting: &'a Waiting) -> Self {
        waiting.count.fetch_add(1, Ordering::AcqRel);
        waiting.entered.notify_waiters();
        Inside(waiting)
    }
}

impl Drop for Inside<'_> {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiting_subscribers_are_counted() {
        let signal = WakeupSignal::default();
        let mut wakeups = signal.subscribe();
        assert_eq!(signal.waiting(), 0);
        let watcher = signal.clone();
        let seen = tokio::spawn(async move {
            watcher.someone_waiting().await;
            let n = watcher.waiting();
            watcher.notify();
            n
        });
        assert!(wakeups.wait(Duration::from_secs(10)).await);
        assert_eq!(seen.await.unwrap(), 1);
        assert_eq!(signal.waiting(), 0, "left the wait");
    }
}
