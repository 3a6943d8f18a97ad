//! Where the next claim on a queue starts its walk of the ready index.
//!
//! Claiming a job updates its row out of the partial `jobs_ready` index, but the old index entry
//! stays until VACUUM removes it, and autovacuum visits a busy table at most once a minute. A
//! claim that walks the index from its head therefore steps over every job claimed since the
//! last vacuum: at 1,000,000 jobs the claim slowed down by 40 % as that dead prefix grew.
//!
//! So each store remembers, per queue, the last `(available_at, seq)` it claimed, and the next
//! claim seeks past it: its cost no longer depends on how much was claimed before. A row can
//! become ready *behind* the cursor (a transaction that pushed it committed late, a job run now
//! in the same millisecond, a row another claimer held and then rolled back), so the cursor is
//! dropped whenever a claim comes back short, and at least every [`FULL_SCAN_EVERY`]: such a
//! row waits at most that long, and nothing is ever skipped for good.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::store::ReservedJob;

/// The longest a row ready behind the cursor can go unseen.
const FULL_SCAN_EVERY: Duration = Duration::from_secs(1);

/// The `(available_at, seq)` before which no claim looks, when there is no cursor.
const FROM_THE_HEAD: (i64, i64) = (i64::MIN, i64::MIN);

#[derive(Debug, Default)]
pub(super) struct ClaimCursors {
    queues: Mutex<HashMap<String, Cursor>>,
}

#[derive(Debug, Clone, Copy)]
struct Cursor {
    after: (i64, i64),
    /// When the last walk from the head began this cursor.
    since: Instant,
}

impl ClaimCursors {
    /// The `(available_at, seq)` the next claim on `queue` starts after.
    pub(super) fn start(&self, queue: &str) -> (i64, i64) {
        let queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        match queues.get(queue) {
            Some(cursor) if cursor.since.elapsed() < FULL_SCAN_EVERY => cursor.after,
            _ => FROM_THE_HEAD,
        }
    }

    /// Records a claim on `queue` that asked for `wanted` rows, started after `start` and
    /// got `claimed` (each with its `seq`).
    pub(super) fn claimed(
        &self,
        queue: &str,
        start: (i64, i64),
        wanted: usize,
        claimed: &[(ReservedJob, i64)],
    ) {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        let last = claimed
            .iter()
            .map(|(job, seq)| (job.available_at, *seq))
            .max();
        match last {
            // A full claim: what lies before its last row is claimed, skipped while locked by
            // another claimer, or became ready late — the periodic walk from the head finds
            // the last two.
            Some(last) if claimed.len() >= wanted => {
                let since = match queues.get(queue) {
                    Some(cursor) if start != FROM_THE_HEAD => cursor.since,
                    _ => Instant::now(),
                };
                queues.insert(queue.to_owned(), Cursor { after: last, since });
            }
            // A short claim saw everything ready from its start: walk from the head next time.
            _ => {
                queues.remove(queue);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(available_at: i64) -> ReservedJob {
        ReservedJob {
            id: String::new(),
            queue: "q".into(),
            envelope: String::new(),
            token: 1,
            attempts: 1,
            recoveries: 0,
            deferrals: 0,
            exceptions: 0,
            retry_until: None,
            last_error: None,
            unreadable: None,
            reserved_at: 0,
            available_at,
        }
    }

    #[test]
    fn a_full_claim_moves_the_cursor_past_its_last_row() {
        let cursors = ClaimCursors::default();
        assert_eq!(cursors.start("q"), FROM_THE_HEAD);
        cursors.claimed("q", FROM_THE_HEAD, 2, &[(job(5), 9), (job(5), 7)]);
        assert_eq!(cursors.start("q"), (5, 9));
        assert_eq!(cursors.start("other"), FROM_THE_HEAD);
    }

    #[test]
    fn a_short_claim_sends_the_next_one_back_to_the_head() {
        let cursors = ClaimCursors::default();
        cursors.claimed("q", FROM_THE_HEAD, 2, &[(job(5), 9), (job(5), 7)]);
        cursors.claimed("q", (5, 9), 2, &[(job(6), 10)]);
        assert_eq!(cursors.start("q"), FROM_THE_HEAD);
        cursors.claimed("q", FROM_THE_HEAD, 2, &[]);
        assert_eq!(cursors.start("q"), FROM_THE_HEAD);
    }

    #[test]
    fn the_cursor_expires_so_rows_ready_behind_it_are_found() {
        let cursors = ClaimCursors::default();
        cursors.claimed("q", FROM_THE_HEAD, 1, &[(job(5), 9)]);
        // Later full claims keep the time of the walk from the head, so the cursor still
        // expires under a steady backlog.
        let mut queues = cursors.queues.lock().unwrap();
        queues.get_mut("q").unwrap().since -= FULL_SCAN_EVERY;
        drop(queues);
        cursors.claimed("q", (5, 9), 1, &[(job(6), 10)]);
        assert_eq!(cursors.start("q"), FROM_THE_HEAD);
    }
}
