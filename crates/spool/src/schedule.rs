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
    schedule_record::{REFRESH, ScheduleRecord},
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
    /// The zone the expression is read in; UTC when `None`.
    zone: Option<chrono_tz::Tz>,
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
    /// The time zone is not an IANA name.
    #[error("schedule `{name}`: unknown time zone `{zone}`; use an IANA name such as Europe/Kyiv")]
    Zone {
        /// The schedule's name.
        name: String,
        /// The zone given.
        zone: String,
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
        let cron = parse(&name, expression)?;
        let make = move |spool: &Spool, id: String| {
            spool.envelope(&job, job.queue().to_string(), job.options(), Some(id), None)
        };
        Ok(Periodic {
            name,
            cron,
            zone: None,
            make: Arc::new(make),
        })
    }

    /// Pushes the job named `job` with `payload` on `queue` at every tick of `expression`:
    /// the form a schedule takes when it comes from a configuration file rather than from
    /// Rust code. Whether a worker knows `job` is for the caller to check.
    ///
    /// ```
    /// let report = spool::Periodic::from_job_name(
    ///     "nightly-report", "0 3 * * *", "shell", "default",
    ///     serde_json::json!({"cmd": "echo report"}),
    /// ).unwrap();
    /// assert_eq!(report.name(), "nightly-report");
    /// ```
    pub fn from_job_name(
        name: impl Into<String>,
        expression: &str,
        job: &str,
        queue: &str,
        payload: serde_json::Value,
    ) -> Result<Periodic, ScheduleError> {
        let name = name.into();
        let cron = parse(&name, expression)?;
        let (job, queue) = (job.to_string(), queue.to_string());
        let make = move |_: &Spool, id: String| {
            let mut envelope = Envelope::new(&job, &queue, payload.clone());
            envelope.id = id;
            Ok(envelope)
        };
        Ok(Periodic {
            name,
            cron,
            zone: None,
            make: Arc::new(make),
        })
    }

    /// Seals each tick's payload with the `SPOOL_KEY` keys, for a job type registered as
    /// encrypted ([`Registry::is_encrypted`](crate::Registry::is_encrypted)); a schedule from
    /// [`Periodic::from_job_name`] is plain otherwise. Ticks fail (with a warning) while no key
    /// is set.
    pub fn sealed(mut self) -> Periodic {
        let plain = self.make.clone();
        self.make =
            Arc::new(move |spool: &Spool, id: String| spool.seal_envelope(plain(spool, id)?));
        self
    }

    /// Reads the expression in the IANA time zone `zone` (`Europe/Kyiv`) instead of UTC, so
    /// `0 3 * * *` is 03:00 there, summer and winter.
    ///
    /// ```
    /// # use chrono::{TimeZone, Utc};
    /// let kyiv = spool::Periodic::from_job_name("r", "0 3 * * *", "noop", "default", serde_json::Value::Null)
    ///     .unwrap()
    ///     .in_zone("Europe/Kyiv")
    ///     .unwrap();
    /// // 03:00 in Kyiv in January is 01:00 UTC.
    /// let after = Utc.with_ymd_and_hms(2030, 1, 10, 12, 0, 0).unwrap();
    /// assert_eq!(kyiv.next_after(after).unwrap(), Utc.with_ymd_and_hms(2030, 1, 11, 1, 0, 0).unwrap());
    /// ```
    pub fn in_zone(mut self, zone: &str) -> Result<Periodic, ScheduleError> {
        self.zone = Some(zone.parse().map_err(|_| ScheduleError::Zone {
            name: self.name.clone(),
            zone: zone.to_string(),
        })?);
        Ok(self)
    }

    /// The time zone the expression is read in (`None`: UTC).
    pub fn zone(&self) -> Option<&str> {
        self.zone.as_ref().map(|z| z.name())
    }

    /// The cron expression.
    pub fn expression(&self) -> String {
        self.cron.pattern.to_string()
    }
}

/// Parses a cron expression of 5 fields, or 6 with seconds first.
fn parse(name: &str, expression: &str) -> Result<croner::Cron, ScheduleError> {
    {
        croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .build()
            .parse(expression)
            .map_err(|e| ScheduleError::Cron {
                name: name.to_string(),
                expression: expression.to_string(),
                reason: e.to_string(),
            })
    }
}

impl Periodic {
    /// The schedule's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The first tick strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Ticks are whole seconds, so every worker names the same tick the same way.
        let after = after.with_nanosecond(0)?;
        let next = match &self.zone {
            None => self.cron.find_next_occurrence(&after, false).ok()?,
            Some(zone) => self
                .cron
                .find_next_occurrence(&after.with_timezone(zone), false)
                .ok()?
                .with_timezone(&Utc),
        };
        next.with_nanosecond(0)
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

/// Runs one schedule's ticker until aborted, publishing its record (next and last run) for
/// dashboards as it goes.
pub(crate) async fn run(spool: Spool, periodic: Periodic, worker: String) {
    let mut after = Utc::now();
    let mut record = periodic.record(&spool, worker);
    loop {
        let Some(mut tick) = periodic.next_after(after) else {
            tracing::warn!(
                schedule = periodic.name(),
                "the schedule has no future tick"
            );
            return;
        };
        // Wait for the tick, publishing the record now and every `REFRESH` meanwhile.
        loop {
            if let Some((store, record)) = &mut record {
                record.publish(&**store, tick.timestamp_millis()).await;
            }
            let wait = (tick - Utc::now()).to_std().unwrap_or_default();
            if wait <= REFRESH {
                tokio::time::sleep(wait).await;
                break;
            }
            tokio::time::sleep(REFRESH).await;
        }
        // Woke up late past later ticks: fire only the latest (no burst of missed ticks).
        while let Some(next) = periodic.next_after(tick).filter(|n| *n <= Utc::now()) {
            tick = next;
        }
        after = tick;
        if let Some((_, record)) = &mut record {
            record.last_run_ms = Some(tick.timestamp_millis());
        }
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

impl Periodic {
    /// The record a worker running this schedule publishes, and the store it goes to (`None`
    /// without a store, or if a tick's job cannot be built).
    fn record(
        &self,
        spool: &Spool,
        worker: String,
    ) -> Option<(Arc<dyn crate::Store>, ScheduleRecord)> {
        let store = spool.store()?;
        // The job and queue a tick pushes, read off a tick's envelope.
        let sample = (self.make)(spool, format!("cron:{}:sample", self.name)).ok()?;
        let record = ScheduleRecord {
            name: self.name.clone(),
            cron: self.expression(),
            timezone: self.zone().map(str::to_string),
            job: sample.job,
            queue: sample.queue,
            next_run_ms: None,
            last_run_ms: None,
            worker,
            seen_ms: 0,
        };
        Some((store, record))
    }
}
