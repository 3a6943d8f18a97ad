//! `[[alert]]`: Horizon's long-wait notifications, on measured numbers. Every `spool work`,
//! `spool supervise` and `spool dashboard` reading a file with alerts runs this task, but each
//! evaluation happens once across the cluster: the first process to take the store's
//! `spool:alerts` turn in a window evaluates; the others skip. What was last posted for each
//! alert is kept in the store, so a firing alert is posted at most once per 5 minutes and once
//! more when it clears, whichever process evaluates.

mod config;
// Without an HTTP client the configuration refuses alerts, so the rules go unused.
#[cfg_attr(not(feature = "http"), allow(dead_code))]
mod rule;
#[cfg(feature = "http")]
mod run;
#[cfg(feature = "http")]
mod webhook;

use std::sync::Arc;

use spool::Store;

pub(crate) use config::{AlertSection, check};
pub(crate) use rule::Alert;

/// Starts evaluating `alerts` in the background (nothing when there are none).
pub(crate) fn spawn(store: &Arc<dyn Store>, alerts: Vec<Alert>) {
    #[cfg(feature = "http")]
    run::spawn(store, alerts);
    #[cfg(not(feature = "http"))]
    let _ = (store, alerts);
}
