//! Checks of the workflow part of the contract ([`WorkflowStore`](spool::store::WorkflowStore)
//! and the workflow effects of settling): unique locks, follow-ups, batches, limiters,
//! concurrency slots, progress and results.

use crate::helpers::pending_in;
use spool::store::Held;
use std::{sync::Arc, time::Duration};

use spool::{
    Envelope, Store,
    store::{NewJob, Progress, Settlement},
};

use crate::{
    Fixture,
    helpers::{LEASE, new_job, push_default, reserve_default, worker},
};

pub mod batches;
pub mod entry;
pub mod hot_path;
pub mod limits;
pub mod unique;

fn in_batch(batch_id: &str) -> NewJob {
    let mut envelope = Envelope::new("noop", "default", serde_json::json!({}));
    envelope.batch_id = Some(batch_id.into());
    NewJob::new(&envelope, Duration::ZERO).expect("encodes")
}

fn callback(queue: &str) -> NewJob {
    new_job(queue, Duration::ZERO)
}

pub(crate) fn complete_with(
    id: &str,
    token: i64,
    follow_ups: Vec<NewJob>,
    result: Option<&str>,
) -> Settlement {
    Settlement::Complete {
        id: id.into(),
        token,
        follow_ups,
        result: result.map(str::to_string),
    }
}

/// Jobs waiting in the `catch`, `finally` and `then` callback queues, in that order.
async fn callbacks_pending(store: &Arc<dyn Store>) -> (u64, u64, u64) {
    (
        pending_in(store, "catch").await,
        pending_in(store, "finally").await,
        pending_in(store, "then").await,
    )
}

/// Progress is visible while the job runs; a stored result outlives the job until pruned.
pub async fn progress_and_results(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    push_default(&store, 1).await;
    let w = worker(&store, "w", LEASE).await;
    let got = reserve_default(&store, &w, 1).await;
    let id = got[0].id.clone();
    assert!(store.job(&id).await.unwrap().unwrap().progress.is_none());
    let progress = Progress {
        percent: 40,
        message: Some("page 4 of 10".into()),
    };
    assert!(
        store
            .set_progress(Held::new(&w, &id, got[0].token), &progress)
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_progress(Held::new(&w, &id, got[0].token + 1), &progress)
            .await
            .unwrap()
    );
    assert_eq!(
        store.job(&id).await.unwrap().unwrap().progress,
        Some(progress)
    );
    let done = complete_with(&id, got[0].token, vec![], Some(r#"{"pages":10}"#));
    store.settle(&w, &[done]).await.unwrap();
    let kept = store.job_result(&id).await.unwrap().unwrap();
    assert_eq!(kept.result, Some(serde_json::json!({"pages": 10})));
    assert_eq!(kept.job, "noop");
    assert!(store.job_result("nope").await.unwrap().is_none());
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(store.prune_results(Duration::ZERO).await.unwrap(), 1);
    // The result is gone; the job's short record stays for the history's retention.
    let record = store
        .job_result(&id)
        .await
        .unwrap()
        .expect("its history record");
    assert!(record.result.is_none() && !record.has_result);
    store.prune_completed(Duration::ZERO).await.unwrap();
    assert!(store.job_result(&id).await.unwrap().is_none());
}
