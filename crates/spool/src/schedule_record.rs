//! What workers publish about the periodic jobs they run, so a dashboard in another process
//! can list every live schedule with its next run: one record per schedule in the store's
//! key-value part (`schedule:<name>`), refreshed at least every minute by each worker running
//! it, and gone a few minutes after the last of them stopped.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::store::{KvExpect, Store, StoreResult};

/// Where schedule records live in the key-value store.
const PREFIX: &str = "schedule:";

/// How often a running schedule's record is written again.
#[cfg_attr(not(feature = "schedule"), allow(dead_code))]
pub(crate) const REFRESH: Duration = Duration::from_secs(60);

/// How long a record outlives its last refresh.
const TTL: Duration = Duration::from_secs(180);

/// Most schedules listed.
const MAX_LISTED: u32 = 1_000;

/// A live periodic job, as the workers running it publish it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleRecord {
    /// The schedule's name.
    pub name: String,
    /// Its cron expression.
    pub cron: String,
    /// The IANA zone the expression is read in (UTC when `None`).
    pub timezone: Option<String>,
    /// The job each tick pushes.
    pub job: String,
    /// The queue it is pushed on.
    pub queue: String,
    /// The next tick (ms since the epoch), if the expression has one.
    pub next_run_ms: Option<i64>,
    /// The last tick a worker fired since it started (ms since the epoch).
    pub last_run_ms: Option<i64>,
    /// The worker that wrote the record last.
    pub worker: String,
    /// When it wrote it (ms since the epoch).
    pub seen_ms: i64,
}

impl ScheduleRecord {
    /// Writes the record with its next run (last writer wins: every worker running the
    /// schedule agrees on it); a store error only delays it to the next refresh.
    #[cfg_attr(not(feature = "schedule"), allow(dead_code))]
    pub(crate) async fn publish(&mut self, store: &dyn Store, next_run_ms: i64) {
        self.next_run_ms = Some(next_run_ms);
        self.seen_ms = crate::now_ms();
        let value = serde_json::to_string(self).expect("a schedule record is JSON");
        let key = format!("{PREFIX}{}", self.name);
        if let Err(e) = store.kv_put(&key, &value, KvExpect::Any, Some(TTL)).await {
            tracing::debug!(
                schedule = self.name,
                "publishing the schedule's record: {e}"
            );
        }
    }
}

/// The schedules workers are running now, by next run (unreadable records are skipped).
///
/// ```no_run
/// # async fn demo(store: &dyn spool::Store) -> Result<(), spool::StoreError> {
/// for s in spool::published_schedules(store).await? {
///     println!("{} ({}): next {:?}", s.name, s.cron, s.next_run_ms);
/// }
/// # Ok(()) }
/// ```
pub async fn published_schedules(store: &dyn Store) -> StoreResult<Vec<ScheduleRecord>> {
    let mut records: Vec<ScheduleRecord> = store
        .kv_list(PREFIX, MAX_LISTED)
        .await?
        .into_iter()
        .filter_map(|(_, entry)| serde_json::from_str(&entry.value).ok())
        .collect();
    records.sort_by_key(|r| (r.next_run_ms.unwrap_or(i64::MAX), r.name.clone()));
    Ok(records)
}
