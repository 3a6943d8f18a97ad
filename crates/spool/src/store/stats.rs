//! What `spool status` reads from a store: per-queue counts, totals, live workers and the
//! workers whose lease ran out.

use serde::Serialize;

/// Counts for one queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    /// Queue name.
    pub name: String,
    /// Ready to run now.
    pub pending: u64,
    /// Waiting for a delay, backoff or deferral.
    pub delayed: u64,
    /// Held by a worker.
    pub reserved: u64,
    /// Age of the oldest ready job, ms (0 when none).
    pub oldest_ready_age_ms: u64,
    /// Paused by `spool pause`: workers take nothing from it. Stores report `false`;
    /// [`Stats::with_control`] fills it in.
    pub paused: bool,
}

/// A live worker, for `spool status`.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerStatus {
    /// Worker id.
    pub id: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// Queues served.
    pub queues: Vec<String>,
    /// Ids of the jobs it holds.
    pub busy: Vec<String>,
    /// How long ago its last heartbeat (or its registration) was, ms, by the store's clock.
    /// `None` for a worker registered by an older Spool, which did not record its lease.
    pub last_seen_ms: Option<u64>,
    /// Its lease, ms: it heartbeats every third of it, so a worker silent for more than half
    /// of it has likely died, and its jobs return when the lease runs out.
    pub lease_ms: Option<u64>,
}

impl WorkerStatus {
    /// Whether the worker has missed heartbeats: silent for more than half its lease.
    pub fn is_silent(&self) -> bool {
        matches!((self.last_seen_ms, self.lease_ms), (Some(seen), Some(lease)) if seen > lease / 2)
    }

    /// `last_seen_ms` and `lease_ms` from the lease's expiry, the lease and the store's now.
    pub(crate) fn seen(
        expires_at: i64,
        lease_ms: Option<i64>,
        now: i64,
    ) -> (Option<u64>, Option<u64>) {
        match lease_ms {
            Some(lease) if lease > 0 => (
                Some(u64::try_from(now - (expires_at - lease)).unwrap_or(0)),
                Some(u64::try_from(lease).unwrap_or(0)),
            ),
            _ => (None, None),
        }
    }
}

/// Everything `spool status` shows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Per-queue counts, sorted by name.
    pub queues: Vec<QueueStats>,
    /// Jobs completed since the store was created.
    pub processed: u64,
    /// Records in the failed store.
    pub failed: u64,
    /// Registered workers whose lease is current.
    pub workers: Vec<WorkerStatus>,
    /// Workers whose lease ran out and that the reaper has not removed yet (the jobs they
    /// hold go back to their queues when it does).
    pub expired_workers: Vec<ExpiredWorker>,
}

/// A worker whose lease ran out, not yet reaped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpiredWorker {
    /// Worker id.
    pub id: String,
    /// How long ago its lease ran out, ms (by the store's clock).
    pub expired_ms: u64,
}

impl ExpiredWorker {
    /// From a stored row: the id and how long ago (ms, negative clamped to 0).
    pub(crate) fn new(id: String, expired_ms: i64) -> ExpiredWorker {
        ExpiredWorker {
            id,
            expired_ms: u64::try_from(expired_ms).unwrap_or(0),
        }
    }
}

impl Stats {
    /// Marks the paused queues, adding those not listed (a paused queue shows even when
    /// empty), kept sorted by name.
    pub fn with_control(mut self, control: &crate::store::Control) -> Stats {
        for queue in &mut self.queues {
            queue.paused = control.is_paused(&queue.name);
        }
        for name in control.paused.keys() {
            if !self.queues.iter().any(|q| &q.name == name) {
                self.queues.push(QueueStats {
                    name: name.clone(),
                    paused: true,
                    ..QueueStats::default()
                });
            }
        }
        self.queues.sort_by(|a, b| a.name.cmp(&b.name));
        self
    }
}
