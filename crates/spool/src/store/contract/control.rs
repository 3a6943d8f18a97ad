//! The control part: what an operator tells every worker on every machine — paused queues,
//! quiet workers, terminate. Workers read it twice a second (see `worker/control.rs`).

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Serialize;

use crate::store::StoreResult;

/// A kind of per-name control mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlKind {
    /// A paused queue: workers take nothing from it (dispatch still works).
    Paused,
    /// A quiet worker: it takes no new jobs and finishes what it runs, until its process
    /// restarts.
    Quiet,
}

impl ControlKind {
    /// The kind's name in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            ControlKind::Paused => "paused",
            ControlKind::Quiet => "quiet",
        }
    }
}

/// A signal every running worker honours once, by epoch: a worker acts on an epoch newer
/// than the one it saw when it started, so processes started later are not affected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlEpoch {
    /// Every running worker goes quiet.
    Quiet,
    /// Every running worker and supervisor stops gracefully.
    Terminate,
}

impl ControlEpoch {
    /// The epoch's name in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            ControlEpoch::Quiet => "quiet",
            ControlEpoch::Terminate => "terminate",
        }
    }
}

/// A kind of record processes keep in the store for the others to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// A supervisor's registration: value = when it expires (ms since the Unix epoch), info =
    /// its host, pid and pools as JSON.
    Supervisor,
    /// A queue's measured mean job run time: value = microseconds, written by its workers.
    RunTime,
    /// A live worker's capacity: name = its id, value = its concurrency (for
    /// `spool_workers_capacity`), info = when it expires unless renewed (ms since the Unix
    /// epoch); readers count only workers whose lease is current.
    Capacity,
    /// What was last posted for an `[[alert]]`: name = the alert's, value = when, info = its
    /// state as JSON.
    Alert,
}

impl RecordKind {
    /// The kind's name in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Supervisor => "supervisor",
            RecordKind::RunTime => "runtime",
            RecordKind::Capacity => "capacity",
            RecordKind::Alert => "alert",
        }
    }
}

/// One record of a [`RecordKind`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its name (a supervisor id, a queue).
    pub name: String,
    /// Its number.
    pub value: i64,
    /// Its details, if any (JSON).
    pub info: Option<String>,
}

/// The control state, as [`ControlStore::control`] reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Control {
    /// Paused queues and when each was paused (ms since the Unix epoch).
    pub paused: BTreeMap<String, i64>,
    /// Workers told to go quiet by id, and when.
    pub quiet: BTreeMap<String, i64>,
    /// The quiet-everyone epoch (0 if never signalled).
    pub quiet_epoch: i64,
    /// The terminate epoch (0 if never signalled).
    pub terminate_epoch: i64,
}

impl Control {
    /// Builds the state from stored rows of (kind, name, value): kinds `paused` and `quiet`
    /// are marks, kind `epoch` holds the epochs by name. Rows of kinds this build does not
    /// know are skipped (written by a newer one).
    pub(crate) fn from_rows(rows: impl IntoIterator<Item = (String, String, i64)>) -> Control {
        let mut control = Control::default();
        for (kind, name, value) in rows {
            match (kind.as_str(), name.as_str()) {
                ("paused", _) => {
                    control.paused.insert(name, value);
                }
                ("quiet", _) => {
                    control.quiet.insert(name, value);
                }
                ("epoch", "quiet") => control.quiet_epoch = value,
                ("epoch", "terminate") => control.terminate_epoch = value,
                _ => {}
            }
        }
        control
    }

    /// Whether `queue` is paused.
    pub fn is_paused(&self, queue: &str) -> bool {
        self.paused.contains_key(queue)
    }
}

/// The control part of the contract: marks and epochs every worker reads.
///
/// ```no_run
/// # async fn demo() -> Result<(), spool::StoreError> {
/// use spool::store::{ControlStore, Store};
/// let store: std::sync::Arc<dyn Store> = spool::connect("sqlite://jobs.db").await?;
/// store.pause(&["emails".to_string()]).await?;
/// assert!(store.control().await?.is_paused("emails"));
/// store.resume(&["emails".to_string()]).await?;
/// # Ok(()) }
/// ```
#[async_trait]
pub trait ControlStore: Send + Sync + 'static {
    /// Every mark and epoch.
    async fn control(&self) -> StoreResult<Control>;

    /// Sets (`on`) or removes a mark; true if that changed anything. `now_ms` is recorded
    /// with a new mark.
    async fn set_mark(
        &self,
        kind: ControlKind,
        name: &str,
        on: bool,
        now_ms: i64,
    ) -> StoreResult<bool>;

    /// Removes every mark of `kind`; returns how many.
    async fn clear_marks(&self, kind: ControlKind) -> StoreResult<u64>;

    /// Sets a new epoch: `now_ms`, but at least one past the previous one. Returns it.
    async fn bump_epoch(&self, epoch: ControlEpoch, now_ms: i64) -> StoreResult<i64>;

    /// Writes a record, replacing the one of that kind and name.
    async fn put_record(
        &self,
        kind: RecordKind,
        name: &str,
        value: i64,
        info: Option<&str>,
    ) -> StoreResult<()>;

    /// Every record of `kind`.
    async fn records(&self, kind: RecordKind) -> StoreResult<Vec<Record>>;

    /// Deletes a record; true if there was one.
    async fn delete_record(&self, kind: RecordKind, name: &str) -> StoreResult<bool>;

    /// Pauses queues; returns those that were not paused.
    async fn pause(&self, queues: &[String]) -> StoreResult<Vec<String>> {
        self.mark_each(ControlKind::Paused, queues, true).await
    }

    /// Resumes paused queues (`spool continue`); returns those that were paused.
    async fn resume(&self, queues: &[String]) -> StoreResult<Vec<String>> {
        self.mark_each(ControlKind::Paused, queues, false).await
    }

    /// Tells workers to go quiet: those named, or every running one if `workers` is empty.
    async fn quiet(&self, workers: &[String]) -> StoreResult<()> {
        if workers.is_empty() {
            self.bump_epoch(ControlEpoch::Quiet, crate::now_ms())
                .await?;
        } else {
            self.mark_each(ControlKind::Quiet, workers, true).await?;
        }
        Ok(())
    }

    /// Tells every running worker and supervisor to stop gracefully; returns the epoch.
    async fn terminate(&self) -> StoreResult<i64> {
        self.bump_epoch(ControlEpoch::Terminate, crate::now_ms())
            .await
    }

    /// Sets or removes a mark on each name; the names whose state changed.
    async fn mark_each(
        &self,
        kind: ControlKind,
        names: &[String],
        on: bool,
    ) -> StoreResult<Vec<String>> {
        let mut changed = Vec::new();
        for name in names {
            if self.set_mark(kind, name, on, crate::now_ms()).await? {
                changed.push(name.clone());
            }
        }
        Ok(changed)
    }
}
