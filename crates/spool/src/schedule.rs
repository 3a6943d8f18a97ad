//! Periodic jobs: a job pushed at every tick of a cron expression.
//!
//! Every worker configured with a schedule runs its ticker, and every ticker pushes the tick's
//! job with the same id (`cron:NAME:TICK_MS`) under a unique lock of the same name that lasts
//! a day: the store takes the lock atomically with the push, so each tick fires exactly once
//! across all workers and machines, however many run the schedule and whatever their clocks
//! say within that day.
//!
//! Missed ticks: a ticker never fires ticks from before it started; when it wakes up late
//! (the process was suspended, the store was unreachable) past several ticks, it fires only the
//! latest of them, so a backlog never turns into a burst.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Timelike, Utc};

use crate::{
    Unique,
    dispatch::{DispatchError, Spool},
    envelope::Envelope,
    job::Job,
    options::UniqueUntil,
};

/// How long a tick's lock lasts: longer than any clock skew between workers.
const TICK_LOCK: Duration = Duration::from_secs(24 * 3600);

/// Builds a tick's envelope under the tick's id.
type MakeEnvelope = dyn Fn(&Spool, String) -> Result<Envelope, DispatchError> + Send + Sync;

/// A job to push on a cron schedule. Give it to workers in
/// [`WorkerConfig::schedules`](crate::WorkerConfig::schedules).
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use spool::{Job, JobContext, JobResult, Periodic};
/// #[derive(Clone, Serialize, Deserialize)]
/// struct NightlyReport;
/// impl Job for NightlyReport {
///     const NAME: &'static str = "nightly_report";
///     async fn handle(self, _ctx: JobContext) -> JobResult { Ok(()) }
/// }
///
/// // Seconds are optional: "0 2 * * *" is 02:00 UTC every day.
/// let nightly = Periodic::new("nightly-report", "0 2 * * *", NightlyReport).unwrap();
/// assert_eq!(nightly.name(), "nightly-report");
/// ```
#[derive(Clone)]
pub struct Periodic {
    name: String,
    cron: croner::Cron,
    make: Arc<MakeEnvelope>,
}

/// A schedule that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// The cron expression does not parse.
    #[error("schedule `{name}`: invalid cron expression `{expression}`: {reason}")]
    Cron {
        /// The schedule's name.
        name: String,
        /// The expression given.
        expression: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl Periodic {
    /// Pushes a copy of `job` at every tick of `expression` (UTC; 5 fields, or 6 with
    /// seconds first).
    pub fn new<J: Job + Clone + Sync>(
        name: impl Into<String>,
        expression: &str,
        job: J,
    ) -> Result<Periodic, ScheduleError> {
        let name = name.into();
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .build()
            .parse(expression)
            .map_err(|e| ScheduleError::Cron {
                name: name.clone(),
                expression: expression.to_string(),
                reason: e.to_string(),
            })?;
        let make = move |spool: &Spool, id: String| {
            spool.envelope(&job, job.queue().to_string(), job.options(), Some(id), None)
        };
        Ok(Periodic {
            name,
            cron,
            make: Arc::new(make),
        })
    }

    /// The schedule's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The first tick strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Ticks are whole seconds, so every worker names the same tick the same way.
        let after = after.with_nanosecond(0)?;
        self.cron
            .find_next_occurrence(&after, false)
            .ok()?
            .with_nanosecond(0)
    }

    /// The tick's job: a fixed id and a day-long unique lock named after the tick.
    fn tick_envelope(&self, spool: &Spool, tick: DateTime<Utc>) -> Result<Envelope, DispatchError> {
        let key = format!("cron:{}:{}", self.name, tick.timestamp_millis());
        // The id is given before the payload is sealed: it is bound into the sealed data.
        let mut envelope = (self.make)(spool, key.clone())?;
        envelope.options.unique = Some(Unique {
            key,
            ttl: Some(TICK_LOCK),
            until: UniqueUntil::Expiry,
        });
        Ok(envelope)
    }
}

impl std::fmt::Debug for Periodic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Periodic")
            .field("name", &self.name)
            .field("cron", &self.cron.pattern.to_string())
            .finish_non_exhaustive()
    }
}

/// Runs one schedule's ticker until aborted.
pub(crate) async fn run(spool: Spool, periodic: Periodic) {
    let mut after = Utc::now();
    loop {
        let Some(mut tick) = periodic.next_after(after) else {
            tracing::warn!(
                schedule = periodic.name(),
                "the schedule has no future tick"
            );
            return;
        };
        let wait = (tick - Utc::now()).to_std().unwrap_or_default();
        tokio::time::sleep(wait).await;
        // Woke up late past later ticks: fire only the latest (no burst of missed ticks).
        while let Some(next) = periodic.next_after(tick).filter(|n| *n <= Utc::now()) {
            tick = next;
        }
        after = tick;
        let pushed = match periodic.tick_envelope(&spool, tick) {
            Ok(envelope) => {
                spool
                    .dispatch_envelopes(vec![(envelope, Duration::ZERO)])
                    .await
            }
            Err(e) => Err(e),
        };
        match pushed {
            Ok(outcomes) => tracing::debug!(
                schedule = periodic.name(),
                tick = %tick,
                status = ?outcomes.first().map(|o| o.status),
                "schedule ticked"
            ),
            Err(e) => {
                tracing::warn!(schedule = periodic.name(), tick = %tick, "cannot push the tick's job: {e}")
            }
        }
    }
}
