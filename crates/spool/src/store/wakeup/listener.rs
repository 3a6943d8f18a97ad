//! The background task behind cross-process wake-ups, shared by the stores whose server can
//! push notifications (PostgreSQL LISTEN, Redis pub/sub): it keeps a subscription alive,
//! reconnecting with backoff, and bumps the store's [`WakeupSignal`] on every notification.
//!
//! Notifications are not kept for a session that is not subscribed, so whenever the task
//! (re)subscribes it also bumps the signal once: idle workers then look for jobs themselves
//! instead of waiting for a notification that was sent while nobody listened.

use std::{future::Future, sync::Mutex, time::Duration};

use tokio::task::JoinHandle;

use super::WakeupSignal;

/// First wait before reconnecting after the subscription failed; doubled up to
/// [`MAX_BACKOFF`] while it keeps failing. Workers keep polling meanwhile.
const MIN_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Where a store's notifications come from: opens a subscription to one channel.
pub(crate) trait Source: Send + 'static {
    /// What a successful [`Source::subscribe`] holds.
    type Subscription: Subscription;

    /// Connects and subscribes; the error, for the log, when that fails.
    fn subscribe(&mut self) -> impl Future<Output = Result<Self::Subscription, String>> + Send;
}

/// A live subscription.
pub(crate) trait Subscription: Send {
    /// Waits for the next reason to wake workers (a notification, or a reconnection that may
    /// have lost some); false once the subscription is lost (the reason already logged).
    fn next(&mut self) -> impl Future<Output = bool> + Send;
}

/// The running task; dropping it (with the store) stops the task and closes its connection.
pub(crate) struct Listener {
    task: JoinHandle<()>,
}

impl Listener {
    /// Starts the task on the current Tokio runtime; `None` (and workers rely on local signals
    /// and polling) when called outside one. `server` names the server in the log.
    pub(crate) fn start(
        source: impl Source,
        server: &'static str,
        channel: String,
        wakeup: WakeupSignal,
    ) -> Option<Self> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                channel,
                "not in a Tokio runtime: cannot listen for {server} wake-ups; polling instead"
            );
            return None;
        };
        let task = runtime.spawn(listen_forever(source, server, channel, wakeup));
        Some(Listener { task })
    }

    /// Starts a listener in `slot` with `start` unless one is running there already (a task
    /// is gone once the runtime it was spawned on shut down).
    pub(crate) fn keep_running(slot: &Mutex<Option<Self>>, start: impl FnOnce() -> Option<Self>) {
        // A poisoned lock only means another caller panicked mid-start; the slot is still sound.
        let mut listener = slot.lock().unwrap_or_else(|e| e.into_inner());
        if listener.as_ref().is_none_or(|l| l.task.is_finished()) {
            *listener = start();
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // Cancelling drops the subscribed connection at the task's next await point.
        self.task.abort();
    }
}

/// Listens until aborted, reconnecting with backoff. Never returns and never panics: every
/// failure is logged and retried.
async fn listen_forever(
    mut source: impl Source,
    server: &'static str,
    channel: String,
    wakeup: WakeupSignal,
) {
    let mut backoff = MIN_BACKOFF;
    loop {
        match source.subscribe().await {
            Ok(mut subscription) => {
                tracing::debug!(channel, "listening for new jobs");
                backoff = MIN_BACKOFF;
                // Anything pushed before the subscription took effect went unnoticed.
                wakeup.notify();
                while subscription.next().await {
                    wakeup.notify();
                }
            }
            Err(e) => tracing::warn!(
                channel,
                "cannot listen for {server} wake-ups: {e}; retrying in {backoff:?}, workers poll meanwhile"
            ),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
