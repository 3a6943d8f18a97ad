//! Cross-process wake-ups for PostgreSQL: one background task per store LISTENs on the
//! schema's channel and bumps the store's [`WakeupSignal`] on every notification.
//!
//! Notifications are not queued for a session that is not listening, so whenever the task
//! (re)connects it also bumps the signal once: idle workers then look for jobs themselves
//! instead of waiting for a notification that was sent while nobody listened.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::task::JoinHandle;

use crate::store::WakeupSignal;

/// First wait before reconnecting after the listening connection failed; doubled up to
/// [`MAX_BACKOFF`] while it keeps failing. Workers keep polling meanwhile.
const MIN_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The running listener task; dropping it (with the store) stops the task and closes its
/// connection.
pub(super) struct Listener {
    task: JoinHandle<()>,
}

impl Listener {
    /// Starts the task on the current Tokio runtime; `None` (and workers rely on local signals
    /// and polling) when called outside one.
    pub(super) fn start(
        options: PgConnectOptions,
        channel: String,
        wakeup: WakeupSignal,
    ) -> Option<Self> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                channel,
                "not in a Tokio runtime: cannot listen for PostgreSQL notifications; polling instead"
            );
            return None;
        };
        let task = runtime.spawn(listen_forever(options, channel, wakeup));
        Some(Listener { task })
    }

    /// False once the task is gone, e.g. because the runtime it was spawned on shut down.
    pub(super) fn is_running(&self) -> bool {
        !self.task.is_finished()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // Cancelling drops the listening connection at the task's next await point.
        self.task.abort();
    }
}

/// Listens until aborted, reconnecting with backoff. Never returns and never panics: every
/// failure is logged and retried.
async fn listen_forever(options: PgConnectOptions, channel: String, wakeup: WakeupSignal) {
    // A pool of one of its own, so the long-lived LISTEN connection never takes a slot from
    // the store's queries; PgListener uses it to reconnect.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(30))
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_lazy_with(options);
    let mut backoff = MIN_BACKOFF;
    loop {
        match subscribe(&pool, &channel).await {
            Ok(mut listener) => {
                tracing::debug!(channel, "listening for new jobs");
                backoff = MIN_BACKOFF;
                // Anything pushed before LISTEN took effect went unnoticed.
                wakeup.notify();
                loop {
                    match listener.try_recv().await {
                        Ok(Some(_)) => wakeup.notify(),
                        // The connection dropped and PgListener has already re-established it
                        // and re-run LISTEN; notifications in between were lost.
                        Ok(None) => {
                            tracing::debug!(channel, "listening connection re-established");
                            wakeup.notify();
                        }
                        Err(e) => {
                            tracing::warn!(
                                channel,
                                "lost the PostgreSQL notification connection: {e}; workers poll until it is back"
                            );
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(
                    channel,
                    "cannot listen for PostgreSQL notifications: {e}; retrying in {backoff:?}, workers poll meanwhile"
                );
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn subscribe(pool: &sqlx::PgPool, channel: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(channel).await?;
    Ok(listener)
}
