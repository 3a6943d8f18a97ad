//! Settling reserved jobs: fencing, releases, the worker's hot path, mixed batches.

use spool::store::Claim;
use std::time::Duration;

use spool::store::{JobState, ReleaseKind, RetrySelector, Settlement};

use crate::{
    Fixture,
    helpers::{
        LEASE, complete, new_job, push_default, push_with_retry_window, q, reserve_default, worker,
    },
};

/// Completing deletes the job and counts it; settlements are fenced on worker and token.
pub async fn settlements_are_fenced(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    push_default(&store, 2).await;
    let a = worker(&store, "a", LEASE).await;
    let b = worker(&store, "b", LEASE).await;
    let got = reserve_default(&store, &a, 2).await;
    // Another worker, or a stale token, cannot settle the job.
    assert_eq!(
        store
            .settle(&b, &[complete(&got[0].id, got[0].token)])
            .await
            .unwrap(),
        [false]
    );
    let stale = complete(&got[0].id, got[0].token - 1);
    assert_eq!(store.settle(&a, &[stale]).await.unwrap(), [false]);
    let done = [
        complete(&got[0].id, got[0].token),
        complete(&got[1].id, got[1].token),
    ];
    assert_eq!(store.settle(&a, &done).await.unwrap(), [true, true]);
    assert_eq!(
        store.settle(&a, &done[..1]).await.unwrap(),
        [false],
        "already completed"
    );
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.processed, 2);
    assert!(
        stats
            .queues
            .iter()
            .all(|q| q.pending + q.delayed + q.reserved == 0)
    );
}

/// Releases put the job back with the counters D-2 asks for.
pub async fn releases_keep_the_counters_right(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let job = new_job("default", Duration::ZERO);
    store.push(std::slice::from_ref(&job)).await.unwrap();
    let w = worker(&store, "w", LEASE).await;
    let cases = [
        (ReleaseKind::RetryAfterError, 1, 0, 1),
        (ReleaseKind::Released, 2, 0, 1),
        (ReleaseKind::Deferred, 2, 1, 1),
        (ReleaseKind::Shutdown, 2, 1, 1),
    ];
    for (kind, attempts, deferrals, exceptions) in cases {
        let got = reserve_default(&store, &w, 1).await;
        assert_eq!(got.len(), 1, "{kind:?}");
        let release = Settlement::Release {
            id: job.id.clone(),
            token: got[0].token,
            delay: Duration::ZERO,
            kind,
            error: Some(format!("{kind:?}")),
        };
        assert_eq!(store.settle(&w, &[release]).await.unwrap(), [true]);
        let info = store.job(&job.id).await.unwrap().expect("still queued");
        assert_eq!(info.state, JobState::Pending);
        assert_eq!(
            (info.attempts, info.deferrals),
            (attempts, deferrals),
            "{kind:?}"
        );
        assert_eq!(
            info.last_error.as_deref(),
            Some(format!("{kind:?}").as_str())
        );
        let again = reserve_default(&store, &w, 1).await;
        assert_eq!(again[0].exceptions, exceptions, "{kind:?}");
        assert!(
            again[0].token > got[0].token,
            "a new reservation gets a new token"
        );
        let back = Settlement::Release {
            id: job.id.clone(),
            token: again[0].token,
            delay: Duration::ZERO,
            kind: ReleaseKind::Shutdown,
            error: None,
        };
        store.settle(&w, &[back]).await.unwrap();
    }
    // A release with a delay makes the job delayed.
    let got = reserve_default(&store, &w, 1).await;
    let later = Settlement::Release {
        id: job.id.clone(),
        token: got[0].token,
        delay: Duration::from_secs(60),
        kind: ReleaseKind::Released,
        error: None,
    };
    store.settle(&w, &[later]).await.unwrap();
    assert_eq!(
        store.job(&job.id).await.unwrap().unwrap().state,
        JobState::Delayed
    );
}

/// The worker's hot path: settling and claiming in one call behaves like the two calls.
pub async fn settle_and_reserve_acks_then_claims(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let jobs = push_default(&store, 4).await;
    let w = worker(&store, "w", LEASE).await;
    let first = reserve_default(&store, &w, 2).await;
    let acks = [
        complete(&first[0].id, first[0].token),
        complete(&first[1].id, first[1].token - 1),
    ];
    let (applied, claimed) = store
        .settle_and_reserve(&acks, Claim::new(&w, &q(&["default"]), 5))
        .await
        .unwrap();
    assert_eq!(applied, [true, false], "the stale token is refused");
    let ids: Vec<String> = claimed.iter().map(|j| j.id.clone()).collect();
    assert_eq!(ids, [jobs[2].id.clone(), jobs[3].id.clone()]);
    assert!(store.job(&first[0].id).await.unwrap().is_none());
    assert_eq!(store.stats().await.unwrap().processed, 1);
    // A mixed batch (a release among the completions), and nothing left to claim.
    let mixed = [
        complete(&claimed[0].id, claimed[0].token),
        Settlement::Release {
            id: claimed[1].id.clone(),
            token: claimed[1].token,
            delay: Duration::from_secs(60),
            kind: ReleaseKind::Released,
            error: None,
        },
    ];
    let (applied, more) = store
        .settle_and_reserve(&mixed, Claim::new(&w, &q(&["default"]), 5))
        .await
        .unwrap();
    assert_eq!(applied, [true, true]);
    assert!(
        more.is_empty(),
        "the released job is delayed and the held one is not free"
    );
    let (applied, none) = store
        .settle_and_reserve(&[], Claim::new(&w, &q(&["default"]), 5))
        .await
        .unwrap();
    assert!(applied.is_empty() && none.is_empty());
}

/// One settle call mixing every kind, a stale completion among them: each settlement gets its
/// own answer, a failed job is retried with fresh counters, and a retried job's deadline is
/// recomputed from its window.
pub async fn one_settle_batch_mixes_every_kind(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let jobs = push_default(&store, 3).await;
    let w = worker(&store, "w", LEASE).await;
    let queues = q(&["default"]);
    let got = store.reserve(Claim::new(&w, &queues, 3)).await.unwrap();
    assert_eq!(
        got.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
        [&jobs[0].id, &jobs[1].id, &jobs[2].id]
    );
    let batch = [
        Settlement::Fail {
            id: got[2].id.clone(),
            token: got[2].token,
            error: "bad".into(),
            causes: vec!["why".into()],
            follow_ups: vec![],
        },
        complete(&got[0].id, got[0].token + 1),
        Settlement::Release {
            id: got[1].id.clone(),
            token: got[1].token,
            delay: Duration::ZERO,
            kind: ReleaseKind::RetryAfterError,
            error: Some("again".into()),
        },
        complete(&got[0].id, got[0].token),
    ];
    // The stale completion of job 0 is refused, the fresh one applied. PostgreSQL answers per
    // id instead, so its stale item reports the fresh completion of the same job in the same
    // call: a known difference, kept visible here rather than hidden by a looser check.
    let stale_answer = fixture.backend() == "postgres";
    assert_eq!(
        store.settle(&w, &batch).await.unwrap(),
        [true, stale_answer, true, true]
    );
    let stats = store.stats().await.unwrap();
    assert_eq!(
        (stats.processed, stats.failed, stats.queues[0].pending),
        (1, 1, 1)
    );
    let record = store.failed_job(&jobs[2].id).await.unwrap().unwrap();
    assert_eq!(
        (record.error.as_str(), record.causes.as_slice()),
        ("bad", &["why".to_string()][..])
    );
    let retried = store
        .retry_failed(&RetrySelector::Ids(vec![jobs[2].id.clone()]))
        .await
        .unwrap();
    assert_eq!(retried, std::slice::from_ref(&jobs[2].id));
    let again = store.reserve(Claim::new(&w, &queues, 3)).await.unwrap();
    assert_eq!(again.len(), 2);
    let bad = again
        .iter()
        .find(|j| j.id == jobs[2].id)
        .expect("retried job");
    assert_eq!(
        (bad.attempts, bad.retry_until, bad.envelope.as_str()),
        (1, None, jobs[2].envelope.as_str())
    );

    // Completions only, one of them stale: a store with a fast path for completions must not
    // let it decide for the stale one.
    let acks = [
        complete(&again[0].id, again[0].token),
        complete(&again[1].id, again[1].token - 1),
    ];
    assert_eq!(store.settle(&w, &acks).await.unwrap(), [true, false]);
    assert_eq!(store.stats().await.unwrap().processed, 2);

    // A retried job's deadline is recomputed from its envelope's window, from the retry on.
    let windowed_id = push_with_retry_window(&store, "windowed").await;
    let windowed = q(&["windowed"]);
    let got = store.reserve(Claim::new(&w, &windowed, 1)).await.unwrap();
    let fail = Settlement::fail(windowed_id, got[0].token, "x".into(), vec![]);
    assert_eq!(store.settle(&w, &[fail]).await.unwrap(), [true]);
    tokio::time::sleep(Duration::from_millis(50)).await;
    store
        .retry_failed(&RetrySelector::All {
            queue: Some("windowed".into()),
        })
        .await
        .unwrap();
    let again = store.reserve(Claim::new(&w, &windowed, 1)).await.unwrap();
    let window = again[0].retry_until.expect("a deadline") - again[0].reserved_at;
    assert!((55_000..=60_000).contains(&window), "{window}");
    assert!(
        again[0].retry_until > got[0].retry_until,
        "the deadline moved with the retry"
    );
}

/// A job whose envelope is not JSON is kept as is: reserved, failed and retried with it (the
/// worker is the one that reports a malformed envelope, so the store must not choke on it).
pub async fn envelopes_that_are_not_json_are_kept_as_is(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let mut job = new_job("default", Duration::ZERO);
    job.envelope = "not json {".into();
    store.push(std::slice::from_ref(&job)).await.unwrap();
    let w = worker(&store, "w", LEASE).await;
    let queues = q(&["default"]);
    let got = store.reserve(Claim::new(&w, &queues, 1)).await.unwrap();
    assert_eq!(got[0].envelope, "not json {");
    let fail = Settlement::fail(got[0].id.clone(), got[0].token, "bad".into(), vec![]);
    assert_eq!(store.settle(&w, &[fail]).await.unwrap(), [true]);
    let record = store.failed_job(&job.id).await.unwrap().unwrap();
    assert_eq!(record.envelope, "not json {");
    let retried = store
        .retry_failed(&RetrySelector::Ids(vec![job.id.clone()]))
        .await
        .unwrap();
    assert_eq!(retried, std::slice::from_ref(&job.id));
    let again = store.reserve(Claim::new(&w, &queues, 1)).await.unwrap();
    assert_eq!(
        (
            again[0].attempts,
            again[0].retry_until,
            again[0].envelope.as_str()
        ),
        (1, None, "not json {")
    );
}
