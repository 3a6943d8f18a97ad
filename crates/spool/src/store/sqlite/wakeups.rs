//! Cross-process wake-ups for SQLite: watch the database's directory and signal on any change
//! to the database or its `-wal` file. Another process's push appends to the WAL, which is what
//! wakes an idle worker here within a millisecond instead of a poll interval later.
//!
//! A busy writer (this process's own included) appends to the WAL thousands of times a second,
//! and every append is an event. Events closer together than [`BURST`] are signalled once: the
//! watcher waits out the rest of the interval without reading, so the kernel merges the
//! repeated events instead of waking the watching thread for each one.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use notify::{RecursiveMode, Watcher};

use crate::store::WakeupSignal;

/// Events closer together than this are one burst: signalled once, at most this late.
const BURST: Duration = Duration::from_millis(1);

/// Keeps the OS watch alive; dropping it stops watching.
pub(super) struct DirWatcher {
    _watcher: notify::RecommendedWatcher,
}

impl DirWatcher {
    /// Starts watching; returns `None` (and workers fall back to polling) if the OS refuses.
    pub(super) fn start(db_file: &Path, wakeup: WakeupSignal) -> Option<Self> {
        let db_file = std::path::absolute(db_file).ok()?;
        let dir = db_file.parent()?.to_path_buf();
        let name = db_file.file_name()?.to_string_lossy().into_owned();
        let mut last_signal: Option<Instant> = None;
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else { return };
                if !matches!(
                    event.kind,
                    notify::EventKind::Modify(_) | notify::EventKind::Create(_)
                ) {
                    return;
                }
                let ours = event.paths.iter().any(|p| {
                    p.file_name()
                        .is_some_and(|f| f.to_string_lossy().starts_with(name.as_str()))
                });
                if !ours {
                    return;
                }
                if let Some(since) = last_signal.map(|at| at.elapsed())
                    && since < BURST
                {
                    std::thread::sleep(BURST - since);
                }
                wakeup.notify();
                last_signal = Some(Instant::now());
            })
            .map_err(|e| tracing::warn!("cannot watch {}: {e}; polling instead", dir.display()))
            .ok()?;
        watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|e| tracing::warn!("cannot watch {}: {e}; polling instead", dir.display()))
            .ok()?;
        Some(DirWatcher { _watcher: watcher })
    }
}
