//! The evaluation loop: take the cluster's turn, read the figures once, decide and post each
//! alert, remember what was posted.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use spool::{
    Store,
    metrics::{Summary, window_records},
    store::{LimitMode, RecordKind, StoreResult},
};

use super::rule::{Alert, Facts, Post, Posted, decide};

/// How often alerts are evaluated (once across the cluster).
const EVERY: Duration = Duration::from_secs(10);
/// The turn's key in the store's shared limiter.
const TURN: &str = "spool:alerts";

/// Starts evaluating `alerts` in the background (nothing when there are none).
pub(super) fn spawn(store: &Arc<dyn Store>, alerts: Vec<Alert>) {
    if alerts.is_empty() {
        return;
    }
    let store = store.clone();
    tokio::spawn(async move {
        let client = super::webhook::client();
        loop {
            tokio::time::sleep(EVERY.mul_f64(0.9 + fastrand::f64() / 5.0)).await;
            match my_turn(&*store).await {
                Ok(true) => {
                    if let Err(e) = evaluate(&*store, &alerts, &client).await {
                        tracing::warn!("alerts: cannot read the figures: {e}");
                    }
                }
                Ok(false) => {}
                Err(e) => tracing::debug!("alerts: cannot take the turn: {e}"),
            }
        }
    });
}

/// Whether this process evaluates now: nobody took the turn in the last 0.9 intervals, and
/// this process's claim was the first.
async fn my_turn(store: &dyn Store) -> StoreResult<bool> {
    let window = EVERY.mul_f64(0.9);
    if store.limit(TURN, window, LimitMode::Peek).await?.count > 0 {
        return Ok(false);
    }
    Ok(store.limit(TURN, window, LimitMode::Record).await?.count == 1)
}

async fn evaluate(
    store: &dyn Store,
    alerts: &[Alert],
    client: &super::webhook::Client,
) -> StoreResult<()> {
    let facts = Facts {
        stats: store.stats().await?.with_control(&store.control().await?),
        supervisors: crate::supervise::registry::live(store).await?,
    };
    let posted: BTreeMap<String, Posted> = store
        .records(RecordKind::Alert)
        .await?
        .into_iter()
        .filter_map(|r| Some((r.name, serde_json::from_str(r.info.as_deref()?).ok()?)))
        .collect();
    // One summary per distinct window, over the counts already read.
    let mut summaries: BTreeMap<i64, Summary> = BTreeMap::new();
    for alert in alerts {
        let window = alert.window.as_millis() as i64;
        if let std::collections::btree_map::Entry::Vacant(slot) = summaries.entry(window) {
            let records = window_records(store, window, None).await?;
            slot.insert(Summary::of(&records, window).with_ages_of(&facts.stats, None));
        }
    }
    for alert in alerts {
        let summary = &summaries[&(alert.window.as_millis() as i64)];
        let reasons = alert.reasons(summary, &facts);
        let now = spool::now_ms();
        let Some(post) = decide(posted.get(&alert.name), !reasons.is_empty(), now) else {
            continue;
        };
        if let Err(e) = client.post(alert, post, &reasons).await {
            // Not recorded: the next evaluation tries again.
            tracing::warn!(alert = %alert.name, "alerts: cannot post to the webhook: {e}");
            continue;
        }
        tracing::info!(alert = %alert.name, state = ?post, "alert posted");
        let record = Posted {
            firing: post == Post::Firing,
            at: now,
        };
        let info = serde_json::to_string(&record).expect("plain data serializes");
        store
            .put_record(RecordKind::Alert, &alert.name, now, Some(&info))
            .await?;
    }
    Ok(())
}
