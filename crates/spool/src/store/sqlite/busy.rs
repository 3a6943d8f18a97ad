//! Waiting for SQLite's write lock: short, jittered naps instead of SQLite's own schedule.
//!
//! SQLite's default busy handler sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50 and then
//! 100 ms between tries. With many processes on one file the lock changes hands every
//! millisecond or so, so a writer that lost twice sleeps far longer than the lock stays busy,
//! and every job and every shared-limit update waits behind those naps. Here a waiter naps a
//! fraction of a millisecond at first and at most a few milliseconds later on, with jitter so
//! waiters do not wake in step, and gives up after the same 10 s the busy timeout allowed.

use std::{
    cell::Cell,
    time::{Duration, Instant},
};

/// How long a statement waits for the lock before SQLite answers `SQLITE_BUSY`.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

thread_local! {
    /// When the current wait began (each database thread waits for one statement at a time).
    static WAITING_SINCE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The busy handler: `count` is how many times SQLite has called it for this statement's
/// wait. Returns whether to try again.
pub(super) fn on_busy(count: i32) -> bool {
    let now = Instant::now();
    let since = WAITING_SINCE.with(|cell| {
        if count == 0 {
            cell.set(Some(now));
        }
        cell.get().unwrap_or(now)
    });
    if now.duration_since(since) >= BUSY_TIMEOUT {
        return false;
    }
    std::thread::sleep(nap(count));
    true
}

/// The nap before try `count + 1`: about 0.1–0.4 ms for the first tries, growing to
/// 1–4 ms after a hundred.
fn nap(count: i32) -> Duration {
    let ceiling_us: u64 = if count < 20 {
        400
    } else if count < 100 {
        1_000
    } else {
        4_000
    };
    Duration::from_micros(fastrand::u64(ceiling_us / 4..=ceiling_us))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naps_stay_short_and_grow() {
        for count in [0, 5, 19] {
            assert!(nap(count) <= Duration::from_micros(400));
        }
        assert!(nap(50) <= Duration::from_millis(1));
        assert!(nap(500) <= Duration::from_millis(4));
        assert!(nap(500) >= Duration::from_millis(1));
    }

    #[test]
    fn gives_up_after_the_timeout() {
        assert!(on_busy(0));
        WAITING_SINCE.with(|cell| cell.set(Some(Instant::now() - BUSY_TIMEOUT)));
        assert!(!on_busy(7));
    }
}
