//! Cross-process wake-ups for Redis: one background task per store subscribes to the prefix's
//! channel on a connection of its own and bumps the store's [`WakeupSignal`] on every message.
//!
//! Pub/sub messages are not kept for a subscriber that is away, so whenever the task
//! (re)subscribes it also bumps the signal once: idle workers then look for jobs themselves
//! instead of waiting for a message that was sent while nobody listened. The task pings now
//! and then, so a connection that died silently is noticed; otherwise it sleeps until a
//! message arrives.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::task::JoinHandle;

use crate::store::WakeupSignal;

/// First wait before resubscribing after the connection failed; doubled up to
/// [`MAX_BACKOFF`] while it keeps failing. Workers keep polling meanwhile.
const MIN_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often an idle subscription checks that its connection is alive.
const PING_EVERY: Duration = Duration::from_secs(30);
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// The running subscriber task; dropping it (with the store) stops the task and closes its
/// connection.
pub(super) struct Listener {
    task: JoinHandle<()>,
}

impl Listener {
    /// Starts the task on the current Tokio runtime; `None` (workers rely on local signals
    /// and polling) when called outside one.
    pub(super) fn start(
        client: redis::Client,
        channel: String,
        wakeup: WakeupSignal,
    ) -> Option<Self> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                channel,
                "not in a Tokio runtime: cannot subscribe to Redis wake-ups; polling instead"
            );
            return None;
        };
        let task = runtime.spawn(listen_forever(client, channel, wakeup));
        Some(Listener { task })
    }

    /// False once the task is gone, e.g. because the runtime it was spawned on shut down.
    pub(super) fn is_running(&self) -> bool {
        !self.task.is_finished()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Subscribes until aborted, reconnecting with backoff. Never returns and never panics.
async fn listen_forever(client: redis::Client, channel: String, wakeup: WakeupSignal) {
    let mut backoff = MIN_BACKOFF;
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                Ok(()) => {
                    tracing::debug!(channel, "subscribed to wake-ups");
                    backoff = MIN_BACKOFF;
                    // Anything pushed before SUBSCRIBE took effect went unnoticed.
                    wakeup.notify();
                    let (mut sink, mut messages) = pubsub.split();
                    loop {
                        match tokio::time::timeout(PING_EVERY, messages.next()).await {
                            Ok(Some(_)) => wakeup.notify(),
                            Ok(None) => {
                                tracing::warn!(
                                    channel,
                                    "lost the Redis wake-up connection; workers poll until it is back"
                                );
                                break;
                            }
                            Err(_idle) => {
                                let ping =
                                    tokio::time::timeout(PING_TIMEOUT, sink.ping::<redis::Value>())
                                        .await;
                                if !matches!(ping, Ok(Ok(_))) {
                                    tracing::warn!(
                                        channel,
                                        "the Redis wake-up connection stopped answering; reconnecting"
                                    );
                                    break;
                                }
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(channel, "cannot subscribe to Redis wake-ups: {e}"),
            },
            Err(e) => tracing::warn!(
                channel,
                "cannot connect for Redis wake-ups: {e}; retrying in {backoff:?}, workers poll meanwhile"
            ),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
