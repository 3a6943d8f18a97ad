//! The supervisor's registration in the store (a `supervisor` record, renewed every few
//! seconds and expiring when it stops renewing), so `spool status` on any machine shows every
//! supervisor with its pools.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use spool::store::{Control, RecordKind, Store};

use super::{
    pool::{Pool, PoolState},
    scale::Shape,
};

/// How often a supervisor renews its registration, and how long one lasts unrenewed.
pub(crate) const RENEW_EVERY: Duration = Duration::from_secs(5);
const LASTS: Duration = Duration::from_secs(30);
/// Registrations expired this long ago are deleted by the next supervisor that registers.
const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// A supervisor as `status --json` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SupervisorStatus {
    #[serde(default)]
    pub(crate) id: String,
    pub(crate) host: String,
    pub(crate) pid: u32,
    pub(crate) pools: Vec<PoolStatus>,
}

/// One of its pools.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PoolStatus {
    pub(crate) name: String,
    pub(crate) queues: Vec<String>,
    /// Live worker processes.
    pub(crate) processes: usize,
    pub(crate) min: u32,
    pub(crate) max: u32,
    pub(crate) balance: String,
    /// `running`, `paused` (every queue of the pool is paused) or `failed`.
    pub(crate) state: String,
    pub(crate) error: Option<String>,
}

impl PoolStatus {
    fn of(pool: &Pool, control: &Control) -> PoolStatus {
        let spec = &pool.spec;
        let (state, error) = match &pool.state {
            PoolState::Failed(why) => ("failed", Some(why.clone())),
            PoolState::Running if spec.queues.iter().all(|q| control.is_paused(q)) => {
                ("paused", None)
            }
            PoolState::Running => ("running", None),
        };
        PoolStatus {
            name: spec.name.clone(),
            queues: spec.queues.clone(),
            processes: pool.processes(),
            min: spec.bounds.min,
            max: spec.bounds.max,
            balance: match spec.shape {
                Shape::Auto => "auto",
                Shape::Simple => "simple",
                Shape::Off => "off",
            }
            .into(),
            state: state.into(),
            error,
        }
    }
}

/// This supervisor's id: host, pid and its start time (ms, hex), unique like a worker's.
pub(crate) fn new_id() -> String {
    format!(
        "{}-{}-{:x}",
        spool::worker::hostname(),
        std::process::id(),
        spool::now_ms()
    )
}

/// Writes (or renews) the registration; forgets long-expired ones of others.
pub(crate) async fn register(store: &dyn Store, id: &str, pools: &[Pool], control: &Control) {
    let status = SupervisorStatus {
        id: String::new(),
        host: spool::worker::hostname(),
        pid: std::process::id(),
        pools: pools.iter().map(|p| PoolStatus::of(p, control)).collect(),
    };
    let info = serde_json::to_string(&status).expect("plain data serializes");
    let now = spool::now_ms();
    let expires = now + LASTS.as_millis() as i64;
    if let Err(e) = store
        .put_record(RecordKind::Supervisor, id, expires, Some(&info))
        .await
    {
        tracing::warn!(error = %e, "cannot register the supervisor in the store");
        return;
    }
    if let Ok(records) = store.records(RecordKind::Supervisor).await {
        let forget = now - FORGET_AFTER.as_millis() as i64;
        for old in records.iter().filter(|r| r.value < forget) {
            let _ = store.delete_record(RecordKind::Supervisor, &old.name).await;
        }
    }
}

/// Removes the registration as the supervisor stops.
pub(crate) async fn deregister(store: &dyn Store, id: &str) {
    if let Err(e) = store.delete_record(RecordKind::Supervisor, id).await {
        tracing::warn!(error = %e, "cannot remove the supervisor's registration");
    }
}

/// The supervisors whose registration is current, by id.
pub(crate) async fn live(store: &dyn Store) -> spool::store::StoreResult<Vec<SupervisorStatus>> {
    let now = spool::now_ms();
    let mut live: Vec<SupervisorStatus> = store
        .records(RecordKind::Supervisor)
        .await?
        .into_iter()
        .filter(|r| r.value > now)
        .filter_map(|r| {
            let mut status: SupervisorStatus = serde_json::from_str(r.info.as_deref()?).ok()?;
            status.id = r.name;
            Some(status)
        })
        .collect();
    live.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(live)
}
