//! Per-item results of batch writes, mapped back onto the caller's input order.

use crate::store::PushOutcome;

/// Maps the ids a push inserted back onto the input order; a repeated id within one batch is
/// `AlreadyQueued` after its first occurrence.
pub(crate) fn push_outcomes(ids: &[&str], inserted: &[String]) -> Vec<PushOutcome> {
    let mut inserted: std::collections::HashSet<&str> =
        inserted.iter().map(String::as_str).collect();
    ids.iter()
        .map(|id| {
            if inserted.remove(id) {
                PushOutcome::Queued
            } else {
                PushOutcome::AlreadyQueued
            }
        })
        .collect()
}
