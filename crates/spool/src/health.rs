//! Health checks over a store, shared by `spool health` and any HTTP endpoint an app mounts:
//! each check is named, passes or fails, and says why.

use std::time::Duration;

use serde::Serialize;

use crate::store::{AdminStore, ControlStore, Record, RecordKind, Stats, StoreResult};

/// What counts as healthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthOptions {
    /// The longest a queue's oldest ready job may have waited.
    pub max_wait: Duration,
    /// The most records the failed store may hold; `None`: no limit.
    pub max_failed: Option<u64>,
    /// How long a worker's expired lease may wait for the reaper: one reap interval (a third
    /// of the 30 s default lease, plus jitter). Past it, nothing is reaping (no worker runs)
    /// and the jobs the dead worker held stay stuck.
    pub max_expired: Duration,
}

impl Default for HealthOptions {
    fn default() -> Self {
        HealthOptions {
            max_wait: Duration::from_secs(300),
            max_failed: None,
            max_expired: Duration::from_secs(15),
        }
    }
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthCheck {
    /// `store`, `workers`, `wait`, `heartbeats`, `leases`, `failed` or `pools`.
    pub name: &'static str,
    /// Whether it passed.
    pub ok: bool,
    /// What was found.
    pub detail: String,
}

/// Every check, and whether all passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthReport {
    /// All checks passed.
    pub healthy: bool,
    /// The checks, in a fixed order.
    pub checks: Vec<HealthCheck>,
}

/// Runs the checks on `store`. An `Err` is a store that could not be read at all.
///
/// ```no_run
/// # async fn demo(store: std::sync::Arc<dyn spool::Store>) -> Result<(), spool::StoreError> {
/// let report = spool::health::check(&*store, &Default::default()).await?;
/// if !report.healthy {
///     for c in report.checks.iter().filter(|c| !c.ok) {
///         eprintln!("{}: {}", c.name, c.detail);
///     }
/// }
/// # Ok(()) }
/// ```
pub async fn check<S: AdminStore + ControlStore + ?Sized>(
    store: &S,
    options: &HealthOptions,
) -> StoreResult<HealthReport> {
    let control = store.control().await?;
    let stats = store.stats().await?.with_control(&control);
    let mut report = report(&stats, options);
    report.checks.push(pools(
        &store.records(RecordKind::Supervisor).await?,
        crate::now_ms(),
    ));
    report.healthy = report.checks.iter().all(|c| c.ok);
    Ok(report)
}

/// No pool of a live supervisor (`spool supervise`, registered in the store) has failed.
fn pools(supervisors: &[Record], now: i64) -> HealthCheck {
    let mut live = 0;
    let mut failed = Vec::new();
    for supervisor in supervisors.iter().filter(|s| s.value > now) {
        live += 1;
        let info: serde_json::Value = supervisor
            .info
            .as_deref()
            .and_then(|i| serde_json::from_str(i).ok())
            .unwrap_or_default();
        let host = info["host"].as_str().unwrap_or("?");
        for pool in info["pools"].as_array().into_iter().flatten() {
            if pool["state"] == "failed" {
                failed.push(format!(
                    "pool `{}` on {host}: {}",
                    pool["name"].as_str().unwrap_or("?"),
                    pool["error"].as_str().unwrap_or("failed")
                ));
            }
        }
    }
    HealthCheck {
        name: "pools",
        ok: failed.is_empty(),
        detail: if failed.is_empty() {
            format!("{live} live supervisor(s), no pool failed")
        } else {
            format!("failed: {}", failed.join("; "))
        },
    }
}

/// The checks over a snapshot of the store.
pub fn report(stats: &Stats, options: &HealthOptions) -> HealthReport {
    let checks = vec![
        HealthCheck {
            name: "store",
            ok: true,
            detail: "reachable".into(),
        },
        workers(stats),
        wait(stats, options.max_wait),
        heartbeats(stats),
        leases(stats, options.max_expired),
        failed(stats, options.max_failed),
    ];
    HealthReport {
        healthy: checks.iter().all(|c| c.ok),
        checks,
    }
}

/// A live worker serves every unpaused queue with ready jobs.
fn workers(stats: &Stats) -> HealthCheck {
    let unserved: Vec<&str> = stats
        .queues
        .iter()
        .filter(|q| q.pending > 0 && !q.paused)
        .filter(|q| {
            !stats
                .workers
                .iter()
                .any(|w| !w.is_silent() && w.queues.contains(&q.name))
        })
        .map(|q| q.name.as_str())
        .collect();
    HealthCheck {
        name: "workers",
        ok: unserved.is_empty(),
        detail: if unserved.is_empty() {
            format!(
                "{} live worker(s) serve every queue with ready jobs",
                stats.workers.len()
            )
        } else {
            format!(
                "no live worker serves {} (ready jobs waiting)",
                unserved.join(", ")
            )
        },
    }
}

/// No queue's oldest ready job has waited longer than `max`.
fn wait(stats: &Stats, max: Duration) -> HealthCheck {
    let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    let late: Vec<String> = stats
        .queues
        .iter()
        .filter(|q| q.pending > 0 && !q.paused && q.oldest_ready_age_ms > max_ms)
        .map(|q| {
            format!(
                "{} ({})",
                q.name,
                crate::format_duration(Duration::from_millis(q.oldest_ready_age_ms))
            )
        })
        .collect();
    HealthCheck {
        name: "wait",
        ok: late.is_empty(),
        detail: if late.is_empty() {
            format!(
                "no ready job waited longer than {}",
                crate::format_duration(max)
            )
        } else {
            format!(
                "oldest ready job waited longer than {}: {}",
                crate::format_duration(max),
                late.join(", ")
            )
        },
    }
}

/// No worker's lease expired longer than `max` ago without the reaper removing it.
fn leases(stats: &Stats, max: Duration) -> HealthCheck {
    let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    let late: Vec<String> = stats
        .expired_workers
        .iter()
        .filter(|w| w.expired_ms > max_ms)
        .map(|w| {
            format!(
                "{} ({} ago)",
                w.id,
                crate::format_duration(Duration::from_millis(w.expired_ms))
            )
        })
        .collect();
    HealthCheck {
        name: "leases",
        ok: late.is_empty(),
        detail: if late.is_empty() {
            format!(
                "no lease expired more than {} ago unreaped",
                crate::format_duration(max)
            )
        } else {
            format!(
                "expired and not reaped (is any worker running?): {}",
                late.join(", ")
            )
        },
    }
}

/// No registered worker has stopped heartbeating (silent for over half its lease: it has
/// likely died, and the jobs it holds come back only when its lease runs out).
fn heartbeats(stats: &Stats) -> HealthCheck {
    let silent: Vec<String> = stats
        .workers
        .iter()
        .filter(|w| w.is_silent())
        .map(|w| {
            format!(
                "{} (last seen {} ms ago, holding {})",
                w.id,
                w.last_seen_ms.unwrap_or(0),
                w.busy.len()
            )
        })
        .collect();
    HealthCheck {
        name: "heartbeats",
        ok: silent.is_empty(),
        detail: if silent.is_empty() {
            "every worker heartbeats".into()
        } else {
            format!("silent workers: {}", silent.join(", "))
        },
    }
}

/// The failed store holds at most `max` records.
fn failed(stats: &Stats, max: Option<u64>) -> HealthCheck {
    let ok = max.is_none_or(|m| stats.failed <= m);
    HealthCheck {
        name: "failed",
        ok,
        detail: match max {
            Some(m) if !ok => format!("{} failed job(s), more than {m}", stats.failed),
            Some(m) => format!("{} failed job(s), at most {m}", stats.failed),
            None => format!("{} failed job(s) (no limit set)", stats.failed),
        },
    }
}
