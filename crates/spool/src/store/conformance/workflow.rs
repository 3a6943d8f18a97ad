//! Conformance checks for the workflow part of the contract: unique locks, follow-ups,
//! batches, limiters, concurrency slots, progress and results. Every store runs them through
//! [`workflow_conformance_tests!`](crate::workflow_conformance_tests).

use std::{sync::Arc, time::Duration};

use super::{LEASE, new_job, q, worker};
use crate::{
    Envelope, Unique,
    store::{
        BatchPrune, JobState, LimitMode, NewBatch, NewJob, Progress, PushOutcome, RetrySelector,
        Settlement, SlotRequest, Store, StoreError,
    },
};

fn unique_job(key: &str, unique: Unique) -> NewJob {
    let mut envelope = Envelope::new("noop", "default", serde_json::json!({}));
    envelope.options.unique = Some(Unique {
        key: key.into(),
        ..unique
    });
    NewJob::new(&envelope, Duration::ZERO).expect("encodes")
}

fn in_batch(batch_id: &str) -> NewJob {
    let mut envelope = Envelope::new("noop", "default", serde_json::json!({}));
    envelope.batch_id = Some(batch_id.into());
    NewJob::new(&envelope, Duration::ZERO).expect("encodes")
}

fn callback(queue: &str) -> NewJob {
    new_job(queue, Duration::ZERO)
}

fn complete_with(
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

async fn pending_in(store: &Arc<dyn Store>, queue: &str) -> u64 {
    store
        .stats()
        .await
        .unwrap()
        .queues
        .iter()
        .find(|s| s.name == queue)
        .map_or(0, |s| s.pending)
}

/// A unique job refuses duplicates until it is done, then frees its key; a failure frees it
/// too; a non-owner (a stale settlement) never does.
pub async fn unique_until_done(store: Arc<dyn Store>) {
    let first = unique_job("doc:1", Unique::new(""));
    assert_eq!(
        store.push(std::slice::from_ref(&first)).await.unwrap(),
        [PushOutcome::Queued]
    );
    let dup = unique_job("doc:1", Unique::new(""));
    assert_eq!(
        store.push(std::slice::from_ref(&dup)).await.unwrap(),
        [PushOutcome::AlreadyQueued]
    );
    assert!(
        store.job(&dup.id).await.unwrap().is_none(),
        "the duplicate is not stored"
    );

    let w = worker(&store, "w", LEASE).await;
    let got = store.reserve(&w, &q(&["default"]), 1).await.unwrap();
    // Held across a release (retry) and while running.
    let release = Settlement::Release {
        id: got[0].id.clone(),
        token: got[0].token,
        delay: Duration::ZERO,
        kind: crate::store::ReleaseKind::RetryAfterError,
        error: Some("retry".into()),
    };
    store.settle(&w, &[release]).await.unwrap();
    assert_eq!(
        store
            .push(&[unique_job("doc:1", Unique::new(""))])
            .await
            .unwrap(),
        [PushOutcome::AlreadyQueued]
    );
    let got = store.reserve(&w, &q(&["default"]), 1).await.unwrap();
    // A stale token is not the owner: the lock stays.
    store
        .settle(
            &w,
            &[Settlement::complete(got[0].id.clone(), got[0].token - 1)],
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .push(&[unique_job("doc:1", Unique::new(""))])
            .await
            .unwrap(),
        [PushOutcome::AlreadyQueued]
    );
    store
        .settle(&w, &[Settlement::complete(got[0].id.clone(), got[0].token)])
        .await
        .unwrap();
    let again = unique_job("doc:1", Unique::new(""));
    assert_eq!(store.push(&[again]).await.unwrap(), [PushOutcome::Queued]);

    // A final failure frees the key too.
    let got = store.reserve(&w, &q(&["default"]), 1).await.unwrap();
    let fail = Settlement::fail(got[0].id.clone(), got[0].token, "boom".into(), vec![]);
    store.settle(&w, &[fail]).await.unwrap();
    assert_eq!(
        store
            .push(&[unique_job("doc:1", Unique::new(""))])
            .await
            .unwrap(),
        [PushOutcome::Queued]
    );
    // Deleting a queued job frees its key.
    let queued = store.jobs(&Default::default()).await.unwrap();
    assert!(store.delete_job(&queued[0].id).await.unwrap());
    assert_eq!(
        store
            .push(&[unique_job("doc:1", Unique::new(""))])
            .await
            .unwrap(),
        [PushOutcome::Queued]
    );
}

/// "Unique until processing" frees the key when a worker reserves the job; an expiring lock
/// outlives the job and frees the key only when its time is up.
pub async fn unique_until_processing_and_expiry(store: Arc<dyn Store>) {
    let first = unique_job("mail:7", Unique::new("").until_processing());
    store.push(&[first]).await.unwrap();
    let dup = unique_job("mail:7", Unique::new("").until_processing());
    assert_eq!(
        store.push(&[dup]).await.unwrap(),
        [PushOutcome::AlreadyQueued]
    );
    let w = worker(&store, "w", LEASE).await;
    let got = store.reserve(&w, &q(&["default"]), 1).await.unwrap();
    assert_eq!(got.len(), 1);
    let while_running = unique_job("mail:7", Unique::new("").until_processing());
    assert_eq!(
        store.push(&[while_running]).await.unwrap(),
        [PushOutcome::Queued]
    );

    let tick = Unique::new("").until_expiry(Duration::from_millis(400));
    assert_eq!(
        store
            .push(&[unique_job("cron:tick", tick.clone())])
            .await
            .unwrap(),
        [PushOutcome::Queued]
    );
    store.clear("default").await.unwrap();
    assert_eq!(
        store
            .push(&[unique_job("cron:tick", tick.clone())])
            .await
            .unwrap(),
        [PushOutcome::AlreadyQueued],
        "an expiring lock outlives its job"
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        store.push(&[unique_job("cron:tick", tick)]).await.unwrap(),
        [PushOutcome::Queued]
    );
}

/// Follow-ups are pushed with the completion or failure that carries them, and not at all
/// when the settlement is refused.
pub async fn follow_ups_ride_with_settlements(store: Arc<dyn Store>) {
    store
        .push(&[
            new_job("default", Duration::ZERO),
            new_job("default", Duration::ZERO),
        ])
        .await
        .unwrap();
    let w = worker(&store, "w", LEASE).await;
    let got = store.reserve(&w, &q(&["default"]), 2).await.unwrap();
    let next = new_job("next", Duration::ZERO);
    let stale = complete_with(
        &got[0].id,
        got[0].token + 7,
        vec![new_job("next", Duration::ZERO)],
        None,
    );
    assert_eq!(store.settle(&w, &[stale]).await.unwrap(), [false]);
    assert_eq!(
        pending_in(&store, "next").await,
        0,
        "a refused settlement pushes nothing"
    );
    let done = complete_with(&got[0].id, got[0].token, vec![next.clone()], None);
    let catch = new_job("catch", Duration::ZERO);
    let failed = Settlement::Fail {
        id: got[1].id.clone(),
        token: got[1].token,
        error: "boom".into(),
        causes: vec![],
        follow_ups: vec![catch.clone()],
    };
    assert_eq!(
        store.settle(&w, &[done, failed]).await.unwrap(),
        [true, true]
    );
    assert_eq!(
        store.job(&next.id).await.unwrap().unwrap().state,
        JobState::Pending
    );
    assert_eq!(store.job(&catch.id).await.unwrap().unwrap().queue, "catch");
}

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
pub async fn batch_counters_and_callbacks(store: Arc<dyn Store>) {
    let id = crate::new_id();
    let jobs: Vec<NewJob> = (0..3).map(|_| in_batch(&id)).collect();
    let pushed = store.create_batch(&batch(&id, false), &jobs).await.unwrap();
    assert_eq!(pushed, [PushOutcome::Queued; 3]);
    let info = store.batch(&id).await.unwrap().unwrap();
    assert_eq!(
        (info.total, info.pending, info.failed, info.progress),
        (3, 3, 0, 0)
    );

    let w = worker(&store, "w", LEASE).await;
    let got = store.reserve(&w, &q(&["default"]), 3).await.unwrap();
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
    assert_eq!(
        (
            pending_in(&store, "catch").await,
            pending_in(&store, "finally").await,
            pending_in(&store, "then").await
        ),
        (1, 1, 0)
    );

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
    let again = store.reserve(&w, &q(&["default"]), 1).await.unwrap();
    store
        .settle(
            &w,
            &[Settlement::complete(again[0].id.clone(), again[0].token)],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            pending_in(&store, "catch").await,
            pending_in(&store, "finally").await,
            pending_in(&store, "then").await
        ),
        (1, 1, 1)
    );
}

/// With `allow_failures` failures don't cancel; `catch` still fires once and `finally` once.
pub async fn batch_allow_failures_add_cancel_and_prune(store: Arc<dyn Store>) {
    let id = crate::new_id();
    let jobs: Vec<NewJob> = (0..2).map(|_| in_batch(&id)).collect();
    store.create_batch(&batch(&id, true), &jobs).await.unwrap();
    let added = store.add_to_batch(&id, &[in_batch(&id)]).await.unwrap();
    assert_eq!(added, [PushOutcome::Queued]);
    assert_eq!(store.batch(&id).await.unwrap().unwrap().total, 3);
    let w = worker(&store, "w", LEASE).await;
    let got = store.reserve(&w, &q(&["default"]), 3).await.unwrap();
    let settle: Vec<Settlement> = vec![
        Settlement::fail(got[0].id.clone(), got[0].token, "a".into(), vec![]),
        Settlement::fail(got[1].id.clone(), got[1].token, "b".into(), vec![]),
        Settlement::complete(got[2].id.clone(), got[2].token),
    ];
    store.settle(&w, &settle).await.unwrap();
    let info = store.batch(&id).await.unwrap().unwrap();
    assert_eq!((info.pending, info.failed, info.progress), (0, 2, 100));
    assert!(info.cancelled_at.is_none());
    assert_eq!(
        (
            pending_in(&store, "catch").await,
            pending_in(&store, "finally").await,
            pending_in(&store, "then").await
        ),
        (1, 1, 0)
    );

    match store
        .add_to_batch("no-such-batch", &[new_job("default", Duration::ZERO)])
        .await
    {
        Err(StoreError::Invalid(msg)) => assert!(msg.contains("no-such-batch"), "{msg}"),
        other => panic!("adding to an unknown batch: {other:?}"),
    }

    let open = crate::new_id();
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
pub async fn chain_links_in_a_batch_count_once(store: Arc<dyn Store>) {
    let id = crate::new_id();
    store
        .create_batch(&batch(&id, false), &[in_batch(&id)])
        .await
        .unwrap();
    let w = worker(&store, "w", LEASE).await;
    let head = store.reserve(&w, &q(&["default"]), 1).await.unwrap();
    let link = in_batch(&id);
    let done = complete_with(&head[0].id, head[0].token, vec![link.clone()], None);
    assert_eq!(store.settle(&w, &[done]).await.unwrap(), [true]);
    let info = store.batch(&id).await.unwrap().unwrap();
    assert_eq!(
        (info.total, info.pending, info.finished_at.is_none()),
        (1, 1, true)
    );
    let next = store.reserve(&w, &q(&["default"]), 1).await.unwrap();
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
pub async fn poison_pills_count_in_their_batch_and_free_their_locks(store: Arc<dyn Store>) {
    let batch_id = crate::new_id();
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
    let got = store.reserve(&dying, &q(&["default"]), 1).await.unwrap();
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

/// The limiter is a sliding window shared by every caller.
pub async fn limiter_is_a_sliding_window(store: Arc<dyn Store>) {
    let window = Duration::from_millis(400);
    let a = store
        .limit("api", window, LimitMode::Acquire(2))
        .await
        .unwrap();
    let b = store
        .limit("api", window, LimitMode::Acquire(2))
        .await
        .unwrap();
    let c = store
        .limit("api", window, LimitMode::Acquire(2))
        .await
        .unwrap();
    assert!(a.hit && b.hit && !c.hit);
    assert_eq!(c.count, 2);
    assert!(c.resets_in > Duration::ZERO && c.resets_in <= window);
    let other = store
        .limit("other", window, LimitMode::Acquire(2))
        .await
        .unwrap();
    assert!(other.hit, "keys are independent");
    let peek = store.limit("api", window, LimitMode::Peek).await.unwrap();
    assert_eq!((peek.hit, peek.count), (false, 2));
    let rec = store.limit("api", window, LimitMode::Record).await.unwrap();
    assert_eq!((rec.hit, rec.count), (true, 3));
    tokio::time::sleep(window + Duration::from_millis(50)).await;
    let later = store
        .limit("api", window, LimitMode::Acquire(2))
        .await
        .unwrap();
    assert_eq!((later.hit, later.count), (true, 1));
    store.clear_limit("api").await.unwrap();
    assert_eq!(
        store
            .limit("api", window, LimitMode::Peek)
            .await
            .unwrap()
            .count,
        0
    );
}

/// Concurrency slots: at most `limit` holders; freed by settling, by the holder's worker
/// dying, or by expiry; only a job its worker holds may take one.
pub async fn slots_limit_concurrency(store: Arc<dyn Store>) {
    let jobs: Vec<NewJob> = (0..3).map(|_| new_job("default", Duration::ZERO)).collect();
    store.push(&jobs).await.unwrap();
    let w = worker(&store, "w", LEASE).await;
    let got = store.reserve(&w, &q(&["default"]), 2).await.unwrap();
    let slot = |job: &crate::store::ReservedJob, expire_after| SlotRequest {
        key: "provider".into(),
        limit: 1,
        job_id: job.id.clone(),
        token: job.token,
        expire_after,
    };
    assert!(store.acquire_slot(&w, &slot(&got[0], None)).await.unwrap());
    assert!(
        store.acquire_slot(&w, &slot(&got[0], None)).await.unwrap(),
        "held already"
    );
    assert!(!store.acquire_slot(&w, &slot(&got[1], None)).await.unwrap());
    let mut stale = slot(&got[1], None);
    stale.token += 1;
    store
        .settle(&w, &[Settlement::complete(got[0].id.clone(), got[0].token)])
        .await
        .unwrap();
    assert!(
        !store.acquire_slot(&w, &stale).await.unwrap(),
        "not the job's holder"
    );
    assert!(
        store
            .acquire_slot(&w, &slot(&got[1], Some(Duration::from_millis(200))))
            .await
            .unwrap()
    );

    // Expiry frees it.
    let dead = worker(&store, "dead", Duration::from_millis(300)).await;
    let last = store.reserve(&dead, &q(&["default"]), 1).await.unwrap();
    assert!(
        !store
            .acquire_slot(&dead, &slot(&last[0], None))
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(
        store
            .acquire_slot(&dead, &slot(&last[0], None))
            .await
            .unwrap(),
        "the slot expired"
    );
    // The holder's worker dies: its slot is free for others.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        store.acquire_slot(&w, &slot(&got[1], None)).await.unwrap(),
        "dead worker's slot"
    );
}

/// Progress is visible while the job runs; a stored result outlives the job until pruned.
pub async fn progress_and_results(store: Arc<dyn Store>) {
    store
        .push(&[new_job("default", Duration::ZERO)])
        .await
        .unwrap();
    let w = worker(&store, "w", LEASE).await;
    let got = store.reserve(&w, &q(&["default"]), 1).await.unwrap();
    let id = got[0].id.clone();
    assert!(store.job(&id).await.unwrap().unwrap().progress.is_none());
    let progress = Progress {
        percent: 40,
        message: Some("page 4 of 10".into()),
    };
    assert!(
        store
            .set_progress(&w, &id, got[0].token, &progress)
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_progress(&w, &id, got[0].token + 1, &progress)
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
    assert!(store.job_result(&id).await.unwrap().is_none());
}

/// Instantiates every workflow check as a `#[tokio::test]`, like
/// [`conformance_tests!`](crate::conformance_tests).
#[macro_export]
macro_rules! workflow_conformance_tests {
    ($make:expr) => {
        $crate::workflow_conformance_tests!(@each $make;
            unique_until_done, unique_until_processing_and_expiry,
            follow_ups_ride_with_settlements, batch_counters_and_callbacks,
            batch_allow_failures_add_cancel_and_prune, chain_links_in_a_batch_count_once,
            poison_pills_count_in_their_batch_and_free_their_locks,
            limiter_is_a_sliding_window,
            slots_limit_concurrency, progress_and_results);
    };
    (@each $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if let Some(store) = $make.await {
                    $crate::store::conformance::workflow::$name(store).await;
                }
            }
        )*
    };
}
