//! Cross-process wake-ups for MySQL, which has no LISTEN/NOTIFY: one background task per store
//! polls a cheap fingerprint of the tables and bumps the store's [`WakeupSignal`] when it
//! changes.
//!
//! The fingerprint is the highest `seq` (moves on every push; one read of the primary key's
//! last entry) and the sum of the `changes` counter slots (bumped by releases, recoveries,
//! run-now and retries). The task polls only while a worker of this process is waiting for
//! jobs, every [`FAST`] while things happen, and after [`HOT_FOR`] without a change it backs
//! off, doubling up to [`SLOW`]: a busy queue is noticed within milliseconds, and an idle
//! worker costs a few trivial queries a second.

use std::time::Duration;

use sqlx::{Connection, MySqlConnection, mysql::MySqlConnectOptions};
use tokio::{task::JoinHandle, time::Instant};

use crate::store::WakeupSignal;

/// Poll interval while jobs are arriving.
pub(super) const FAST: Duration = Duration::from_millis(5);
/// How long after the last change polling stays at [`FAST`].
pub(super) const HOT_FOR: Duration = Duration::from_millis(250);
/// The longest poll interval, reached when nothing has changed for a while.
pub(super) const SLOW: Duration = Duration::from_millis(250);
/// First wait before reconnecting after the polling connection failed; doubled up to
/// [`MAX_BACKOFF`] while it keeps failing.
const MIN_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The running poller; dropping it (with the store) stops the task and closes its
/// connection.
pub(super) struct Poller {
    task: JoinHandle<()>,
}

impl Poller {
    /// Starts the task on the current Tokio runtime; `None` (and workers rely on local signals
    /// and their own polling) when called outside one.
    pub(super) fn start(options: MySqlConnectOptions, wakeup: WakeupSignal) -> Option<Self> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("not in a Tokio runtime: cannot poll MySQL for new jobs");
            return None;
        };
        Some(Poller {
            task: runtime.spawn(poll_forever(options, wakeup)),
        })
    }

    /// False once the task is gone, e.g. because the runtime it was spawned on shut down.
    pub(super) fn is_running(&self) -> bool {
        !self.task.is_finished()
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The poll interval after a poll: [`FAST`] while the last change is recent, then doubling up
/// to [`SLOW`].
pub(super) fn next_interval(current: Duration, since_change: Duration) -> Duration {
    if since_change < HOT_FOR {
        FAST
    } else {
        (current * 2).clamp(FAST, SLOW)
    }
}

/// Polls until aborted, reconnecting with backoff. Never returns and never panics: every
/// failure is logged and retried.
async fn poll_forever(options: MySqlConnectOptions, wakeup: WakeupSignal) {
    let mut conn: Option<MySqlConnection> = None;
    let mut last: Option<(i64, i64)> = None;
    let mut last_change = Instant::now();
    let mut interval = FAST;
    let mut backoff = MIN_BACKOFF;
    loop {
        if wakeup.waiting() == 0 {
            wakeup.someone_waiting().await;
            // Workers were busy until now: jobs are flowing, so look often at first.
            last_change = Instant::now();
        }
        let polled = match conn.as_mut() {
            Some(c) => fingerprint(c).await,
            None => match MySqlConnection::connect_with(&options).await {
                Ok(mut c) => {
                    let polled = fingerprint(&mut c).await;
                    conn = Some(c);
                    polled
                }
                Err(e) => Err(e),
            },
        };
        match polled {
            Ok(now) => {
                backoff = MIN_BACKOFF;
                if last.is_some_and(|before| before != now) {
                    wakeup.notify();
                    last_change = Instant::now();
                }
                last = Some(now);
                interval = next_interval(interval, last_change.elapsed());
                tokio::time::sleep(interval).await;
            }
            Err(e) => {
                tracing::warn!(
                    "cannot poll MySQL for new jobs: {e}; retrying in {backoff:?}, workers poll meanwhile"
                );
                conn = None;
                // Whatever happened while the connection was down went unnoticed.
                last = None;
                wakeup.notify();
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

async fn fingerprint(conn: &mut MySqlConnection) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as(include_str!("sql/wakeups.sql"))
        .fetch_one(conn)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polling_is_fast_after_changes_and_backs_off_when_quiet() {
        assert_eq!(next_interval(SLOW, Duration::ZERO), FAST);
        let mut interval = FAST;
        let mut steps = 0;
        while interval < SLOW {
            interval = next_interval(interval, HOT_FOR);
            steps += 1;
        }
        assert_eq!(interval, SLOW);
        assert!(steps <= 6, "{steps}");
    }
}
