//! Batches: counters, callbacks, chains inside a batch, and poison pills in a batch.

use std::time::Duration;

use spool::{
    Envelope, Unique,
    store::{BatchPrune, NewBatch, NewJob, PushOutcome, RetrySelector, Settlement, StoreError},
};

use super::{callback, callbacks_pending, complete_with, in_batch, pending_in, unique::unique_job};
use crate::{
    Fixture,
    helpers::{LEASE, new_job, reserve_default, worker},
};

fn batch(id: &str, allow_failures: bool) -> NewBatch {
    NewBatch {
        id: id.into(),
        name: "docs".into(),
        allow_failures,
        then: Some(callback("then")),
        catch: Some(callback("catch")),
        finally: Some(callback("finally")),
    }
}

/// Batch counters move with each settlement; `catch` fires at the first failure, `finally`
/// when every job ran, `then` only when none failed (after a retry too), each at most once.
pub async fn batch_counters_and_callbacks(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let id = spool::new_id();
    let jobs: Vec<NewJob> = (0..3).map(|_| in_batch(&id)).collect();
    let pushed = store.create_batch(&batch(&id, false), &jobs).await.unwrap();
    assert_eq!(pushed, [PushOutcome::Queued; 3]);
    let info = store.batch(&id).await.unwrap().unwrap();
    assert_eq!(
        (info.total, info.pending, info.failed, info.progress),
        (3, 3, 0, 0)
    );

    let w = worker(&store, "w", LEASE).await;
    let got = reserve_default(&store, &w, 3).await;
    store
        .settle(&w, &[Settlement::complete(got[0].id.clone(), got[0].token)])
        .await
        .unwrap();
    let fail = Settlement::fail(got[1].id.clone(), got[1].token, "boom".into(), vec![]);
    store.settle(&w, &[fail]).await.unwrap();
    let info = store.batch(&id).await.unwrap().unwrap();
    assert_eq!((info.pending, info.failed, info.progress), (1, 1, 66));
    assert_eq!(info.failed_ids, [got[1].id.clone()]);
    assert!(
        info.cancelled_at.is_some(),
        "without allow_failures a failure cancels"
    );
    assert_eq!(pending_in(&store, "catch").await, 1);
    store
        .settle(&w, &[Settlement::complete(got[2].id.clone(), got[2].token)])
        .await
        .unwrap();
    let info = store.batch(&id).await.unwrap().unwrap();
    assert_eq!((info.pending, info.failed, info.progress), (0, 1, 100));
    assert!(info.finished_at.is_some());
    assert_eq!(callbacks_pending(&store).await, (1, 1, 0));

    // Retrying the failed job and succeeding fires `then`, and never `finally` again.
    let retried = store
        .retry_failed(&RetrySelector::Batch(id.clone()))
        .await
        .unwrap();
    assert_eq!(retried, [got[1].id.clone()]);
    let info = store.batch(&id).await.unwrap().unwrap();
    assert_eq!(
        (info.pending, info.failed, info.cancelled_at.is_none()),
        (1, 0, true)
    );
    let again = reserve_default(&store, &w, 1).await;
    store
        .settle(
            &w,
            &[Settlement::complete(again[0].id.clone(), again[0].token)],
        )
        .await
        .unwrap();
    assert_eq!(callbacks_pending(&store).await, (1, 1, 1));
}

/// With `allow_failures` failures don't cancel; `catch` still fires once and `finally` once.
pub async fn batch_allow_failures_add_cancel_and_prune(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let id = spool::new_id();
    let jobs: Vec<NewJob> = (0..2).map(|_| in_batch(&id)).collect();
    store.create_batch(&batch(&id, true), &jobs).await.unwrap();
    let added = store.add_to_batch(&id, &[in_batch(&id)]).await.unwrap();
    assert_eq!(added, [PushOutcome::Queued]);
    assert_eq!(store.batch(&id).await.unwrap().unwrap().total, 3);
    let w = worker(&store, "w", LEASE).await;
    let got = reserve_default(&store, &w, 3).await;
    let settle: Vec<Settlement> = vec![
        Settlement::fail(got[0].id.clone(), got[0].token, "a".into(), vec![]),
        Settlement::fail(got[1].id.clone(), got[1].token, "b".into(), vec![]),
        Settlement::complete(got[2].id.clone(), got[2].token),
    ];
    store.settle(&w, &settle).await.unwrap();
    let info = store.batch(&id).await.unwrap().unwrap();
    assert_eq!((info.pending, info.failed, info.progress), (0, 2, 100));
    assert!(info.cancelled_at.is_none());
    assert_eq!(callbacks_pending(&store).await, (1, 1, 0));

    match store
        .add_to_batch("no-such-batch", &[new_job("default", Duration::ZERO)])
        .await
    {
        Err(StoreError::Invalid(msg)) => assert!(msg.contains("no-such-batch"), "{msg}"),
        other => panic!("adding to an unknown batch: {other:?}"),
    }

    let open = spool::new_id();
    store
        .create_batch(&batch(&open, false), &[in_batch(&open)])
        .await
        .unwrap();
    assert!(store.cancel_batch(&open).await.unwrap());
    assert!(
        !store.cancel_batch(&open).await.unwrap(),
        "already cancelled"
    );
    let listed = store.batches(10).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].id, open, "newest first");
    // Nothing is old enough for the default ages; an age of zero removes them.
    let keep = BatchPrune {
        finished: Some(Duration::from_secs(3600)),
        unfinished: None,
        cancelled: None,
    };
    assert_eq!(store.prune_batches(keep).await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let finished = BatchPrune {
        finished: Some(Duration::ZERO),
        ..BatchPrune::default()
    };
    assert_eq!(
        store.prune_batches(finished).await.unwrap(),
        1,
        "the finished one"
    );
    let cancelled = BatchPrune {
        cancelled: Some(Duration::ZERO),
        ..BatchPrune::default()
    };
    assert_eq!(store.prune_batches(cancelled).await.unwrap(), 1);
    assert!(store.batches(10).await.unwrap().is_empty());
}

/// A completion whose follow-up belongs to the same batch (a chain inside a batch) passes its
/// membership on: the batch counts the chain once, when its last link completes.
pub async fn chain_links_in_a_batch_count_once(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let id = spool::new_id();
    store
        .create_batch(&batch(&id, false), &[in_batch(&id)])
        .await
        .unwrap();
    let w = worker(&store, "w", LEASE).await;
    let head = reserve_default(&store, &w, 1).await;
    let link = in_batch(&id);
    let done = complete_with(&head[0].id, head[0].token, vec![link.clone()], None);
    assert_eq!(store.settle(&w, &[done]).await.unwrap(), [true]);
    let info = store.batch(&id).await.unwrap().unwrap();
    assert_eq!(
        (info.total, info.pending, info.finished_at.is_none()),
        (1, 1, true)
    );
    let next = reserve_default(&store, &w, 1).await;
    assert_eq!(next[0].id, link.id);
    store
        .settle(
            &w,
            &[Settlement::complete(next[0].id.clone(), next[0].token)],
        )
        .await
        .unwrap();
    let info = store.batch(&id).await.unwrap().unwrap();
    assert_eq!((info.pending, info.failed, info.progress), (0, 0, 100));
    assert_eq!(pending_in(&store, "then").await, 1);
}

/// A job failed by the reaper as a poison pill ends in its batch like any final failure:
/// counted as failed (firing `catch`), its unique lock released, and retryable with its batch.
pub async fn poison_pills_count_in_their_batch_and_free_their_locks(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let batch_id = spool::new_id();
    let mut envelope = Envelope::new("noop", "default", serde_json::json!({}));
    envelope.batch_id = Some(batch_id.clone());
    envelope.options.unique = Some(Unique::new("pill"));
    let job = NewJob::new(&envelope, Duration::ZERO).expect("encodes");
    let catch = callback("catch");
    let batch = NewBatch {
        id: batch_id.clone(),
        name: "b".into(),
        catch: Some(catch.clone()),
        ..NewBatch::default()
    };
    store
        .create_batch(&batch, std::slice::from_ref(&job))
        .await
        .unwrap();
    let dying = worker(&store, "dying", Duration::from_millis(100)).await;
    let got = reserve_default(&store, &dying, 1).await;
    assert_eq!(got.len(), 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(store.reap(1).await.unwrap().failed, 1);
    let info = store.batch(&batch_id).await.unwrap().unwrap();
    assert_eq!((info.pending, info.failed), (0, 1));
    assert_eq!(info.failed_ids, std::slice::from_ref(&job.id));
    assert!(
        store.job(&catch.id).await.unwrap().is_some(),
        "`catch` was pushed"
    );
    let again = unique_job("pill", Unique::new(""));
    assert_eq!(store.push(&[again]).await.unwrap(), [PushOutcome::Queued]);
    // The failed record keeps its batch: retrying the batch finds it.
    let retried = store
        .retry_failed(&RetrySelector::Batch(batch_id.clone()))
        .await
        .unwrap();
    assert_eq!(retried, [job.id]);
    let info = store.batch(&batch_id).await.unwrap().unwrap();
    assert_eq!((info.pending, info.failed), (1, 0));
    assert!(info.failed_ids.is_empty());
}

/// A batch record keeps the first 1,000 failed job ids, so each failure's write stays small
/// however many jobs fail; the counter counts them all.
pub async fn batch_failed_ids_stay_bounded(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let id = spool::new_id();
    let jobs: Vec<NewJob> = (0..1005).map(|_| in_batch(&id)).collect();
    store.create_batch(&batch(&id, true), &jobs).await.unwrap();
    let w = worker(&store, "w", LEASE).await;
    let mut failed_in_order = Vec::new();
    loop {
        let got = reserve_default(&store, &w, 200).await;
        if got.is_empty() {
            break;
        }
        let fails: Vec<Settlement> = got
            .iter()
            .map(|j| Settlement::fail(j.id.clone(), j.token, "boom".into(), vec![]))
            .collect();
        store.settle(&w, &fails).await.unwrap();
        failed_in_order.extend(got.into_iter().map(|j| j.id));
    }
    let info = store.batch(&id).await.unwrap().unwrap();
    assert_eq!((info.failed, info.pending), (1005, 0));
    assert_eq!(info.failed_ids.len(), 1000);
    assert_eq!(info.failed_ids[..], failed_in_order[..1000]);
}
