//! What an operator tells this worker through the store — `spool pause`/`continue`, `quiet`,
//! `terminate` — read twice a second and handed to the loop as a watch, so every worker on
//! every machine honours it within a second.

use std::{collections::HashSet, sync::Arc, time::Duration};

use tokio::{sync::watch, task::JoinHandle};

use crate::store::{Control, Store};

/// How often the control state is read.
const POLL: Duration = Duration::from_millis(500);

/// What the loop needs to know.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ControlView {
    /// Queues it must not take from.
    pub(crate) paused: HashSet<String>,
    /// It takes no new jobs (until its process restarts: once quiet, always quiet).
    pub(crate) quiet: bool,
    /// It stops gracefully.
    pub(crate) terminate: bool,
}

/// The epochs a worker saw at start: only newer ones are for it.
#[derive(Debug, Clone, Copy)]
struct Baseline {
    quiet: i64,
    terminate: i64,
}

impl ControlView {
    fn read(control: &Control, baseline: Baseline, worker: &str, was_quiet: bool) -> ControlView {
        ControlView {
            paused: control.paused.keys().cloned().collect(),
            quiet: was_quiet
                || control.quiet_epoch > baseline.quiet
                || control.quiet.contains_key(worker),
            terminate: control.terminate_epoch > baseline.terminate,
        }
    }
}

/// The poller: stops when dropped.
pub(crate) struct ControlWatch {
    rx: watch::Receiver<ControlView>,
    task: JoinHandle<()>,
}

impl ControlWatch {
    /// Reads the control state now (a worker starts paused where it should) and then every
    /// half second. A read that fails keeps the last state.
    pub(crate) async fn start(store: Arc<dyn Store>, worker: String) -> ControlWatch {
        let first = store.control().await.ok();
        let baseline = first.as_ref().map(|c| Baseline {
            quiet: c.quiet_epoch,
            terminate: c.terminate_epoch,
        });
        let view = match (&first, baseline) {
            (Some(control), Some(baseline)) => ControlView::read(control, baseline, &worker, false),
            _ => ControlView::default(),
        };
        let (tx, rx) = watch::channel(view);
        let task = tokio::spawn(poll(store, worker, baseline, tx));
        ControlWatch { rx, task }
    }

    /// The current state, updated as it changes.
    pub(crate) fn subscribe(&self) -> watch::Receiver<ControlView> {
        self.rx.clone()
    }
}

impl Drop for ControlWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn poll(
    store: Arc<dyn Store>,
    worker: String,
    mut baseline: Option<Baseline>,
    tx: watch::Sender<ControlView>,
) {
    loop {
        tokio::time::sleep(POLL).await;
        let control = match store.control().await {
            Ok(control) => control,
            Err(e) => {
                tracing::debug!("cannot read the control state now: {e}");
                continue;
            }
        };
        // Without a first read, the first that succeeds sets what "newer" means.
        let base = *baseline.get_or_insert(Baseline {
            quiet: control.quiet_epoch,
            terminate: control.terminate_epoch,
        });
        let was_quiet = tx.borrow().quiet;
        let view = ControlView::read(&control, base, &worker, was_quiet);
        tx.send_if_modified(|current| {
            if *current == view {
                return false;
            }
            if view.quiet && !current.quiet {
                tracing::info!(worker, "quiet: taking no new jobs until restarted");
            }
            if view.terminate && !current.terminate {
                tracing::info!(worker, "terminate signalled: stopping");
            }
            *current = view;
            true
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_epochs_newer_than_the_start_and_own_marks_count() {
        let base = Baseline {
            quiet: 5,
            terminate: 7,
        };
        let mut control = Control {
            quiet_epoch: 5,
            terminate_epoch: 7,
            ..Control::default()
        };
        control.paused.insert("mail".into(), 1);
        let view = ControlView::read(&control, base, "w1", false);
        assert!(!view.quiet && !view.terminate);
        assert!(view.paused.contains("mail"));
        control.quiet.insert("w2".into(), 1);
        assert!(!ControlView::read(&control, base, "w1", false).quiet);
        assert!(ControlView::read(&control, base, "w2", false).quiet);
        control.quiet_epoch = 6;
        control.terminate_epoch = 8;
        let view = ControlView::read(&control, base, "w1", false);
        assert!(view.quiet && view.terminate);
        // Quiet sticks even when the marks are cleared.
        let cleared = Control::default();
        assert!(ControlView::read(&cleared, base, "w1", true).quiet);
    }
}
