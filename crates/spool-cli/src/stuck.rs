//! What `status` flags about reserved jobs: those held by workers whose lease expired (the
//! reaper returns them within a third of a lease; until then they wait) and those running
//! past their timeout (a worker cancels a job at its timeout, so one still held later points
//! at a wedged worker or a clock far apart).

use std::time::Duration;

use serde::Serialize;
use spool::store::{JobFilter, JobInfo, JobState, Stats, Store};

use crate::CliError;

/// Reserved jobs looked at (the oldest first).
const LOOK_AT: u32 = 1000;
/// Time past its timeout before a running job is flagged (its settlement may be on its way).
const SLACK: Duration = Duration::from_secs(1);

/// The flags, as `status --json` shows them under `"stuck"`.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Stuck {
    /// Workers no longer live that still hold jobs.
    pub(crate) expired_workers: Vec<ExpiredWorker>,
    /// Jobs held longer than their timeout.
    pub(crate) past_timeout: Vec<Overdue>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ExpiredWorker {
    pub(crate) worker: String,
    pub(crate) jobs: usize,
}

#[derive(Debug, Serialize)]
pub(crate) struct Overdue {
    pub(crate) id: String,
    pub(crate) queue: String,
    pub(crate) job: String,
    pub(crate) worker: Option<String>,
    pub(crate) running_for_ms: u64,
    pub(crate) timeout_ms: u64,
}

/// Reads the reserved jobs and flags what is stuck, given `stats`'s live workers.
pub(crate) async fn find(store: &dyn Store, stats: &Stats) -> Result<Stuck, CliError> {
    let filter = JobFilter {
        state: Some(JobState::Reserved),
        limit: Some(LOOK_AT),
        ..JobFilter::default()
    };
    let reserved = store.jobs(&filter).await?;
    Ok(flag(&reserved, stats, spool::now_ms()))
}

fn flag(reserved: &[JobInfo], stats: &Stats, now: i64) -> Stuck {
    let mut stuck = Stuck::default();
    for job in reserved {
        if let Some(worker) = &job.worker
            && !stats.workers.iter().any(|w| &w.id == worker)
        {
            match stuck
                .expired_workers
                .iter_mut()
                .find(|e| &e.worker == worker)
            {
                Some(e) => e.jobs += 1,
                None => stuck.expired_workers.push(ExpiredWorker {
                    worker: worker.clone(),
                    jobs: 1,
                }),
            }
        }
        let Some(reserved_at) = job.reserved_at else {
            continue;
        };
        let running = u64::try_from(now.saturating_sub(reserved_at)).unwrap_or(0);
        let timeout = timeout_ms(&job.envelope);
        if running > timeout + SLACK.as_millis() as u64 {
            stuck.past_timeout.push(Overdue {
                id: job.id.clone(),
                queue: job.queue.clone(),
                job: job.job.clone(),
                worker: job.worker.clone(),
                running_for_ms: running,
                timeout_ms: timeout,
            });
        }
    }
    stuck
}

/// The job's own timeout, else the default every worker applies.
fn timeout_ms(envelope: &str) -> u64 {
    serde_json::from_str::<serde_json::Value>(envelope)
        .ok()
        .and_then(|e| e["options"]["timeout_ms"].as_u64())
        .unwrap_or_else(|| {
            spool::worker::default_job_options()
                .timeout
                .map_or(u64::MAX / 2, |t| t.as_millis() as u64)
        })
}
