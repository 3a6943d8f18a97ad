//! Limiters and concurrency slots, alone and under concurrent callers.

use spool::store::Claim;
use std::time::Duration;

use spool::store::{LimitMode, ReservedJob, Settlement, SlotRequest};

use crate::{
    Fixture,
    helpers::{LEASE, new_job, push_default, q, reserve_default, worker},
};

/// The limiter is a sliding window shared by every caller.
pub async fn limiter_is_a_sliding_window(fixture: &dyn Fixture) {
    let store = fixture.store().await;
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

/// The hits of a key that is never used again do not stay for ever: `prune_limits` deletes
/// every hit whose window has passed, and none that still counts.
pub async fn expired_limiter_hits_of_idle_keys_are_pruned(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let short = Duration::from_millis(50);
    let long = Duration::from_secs(3600);
    for key in ["idle-1", "idle-2"] {
        assert!(
            store
                .limit(key, short, LimitMode::Record)
                .await
                .unwrap()
                .hit
        );
    }
    assert!(
        store
            .limit("busy", long, LimitMode::Record)
            .await
            .unwrap()
            .hit
    );
    tokio::time::sleep(short * 2).await;
    let pruned = store.prune_limits().await.unwrap();
    // Redis gives every hit log a TTL of its window: it expires idle keys by itself.
    let expected = if fixture.backend() == "redis" { 0 } else { 2 };
    assert_eq!(pruned, expected, "the expired hits of the idle keys");
    assert_eq!(
        store.prune_limits().await.unwrap(),
        0,
        "nothing left to prune"
    );
    let busy = store.limit("busy", long, LimitMode::Peek).await.unwrap();
    assert_eq!(busy.count, 1, "a hit still in its window is kept");
}

/// Concurrency slots: at most `limit` holders; freed by settling, by the holder's worker
/// dying, or by expiry; only a job its worker holds may take one.
pub async fn slots_limit_concurrency(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    push_default(&store, 3).await;
    let w = worker(&store, "w", LEASE).await;
    let got = reserve_default(&store, &w, 2).await;
    let slot = |job: &ReservedJob, expire_after| SlotRequest {
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
    let last = reserve_default(&store, &dead, 1).await;
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

/// Several handles (so several connections: callers really run at once) share one limiter key
/// and one slot key: never more hits or holders than the limit.
pub async fn limits_and_slots_hold_under_concurrent_callers(fixture: &dyn Fixture) {
    let first = fixture.store().await;
    let mut stores = vec![first];
    for _ in 0..3 {
        stores.push(fixture.open().await);
    }
    let window = Duration::from_secs(60);
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store = stores[i % stores.len()].clone();
            tokio::spawn(async move {
                store
                    .limit("api", window, LimitMode::Acquire(5))
                    .await
                    .unwrap()
                    .hit
            })
        })
        .collect();
    let mut hits = 0;
    for t in tasks {
        hits += usize::from(t.await.unwrap());
    }
    assert_eq!(hits, 5, "exactly the limit, however the calls interleave");
    let peek = stores[1]
        .limit("api", window, LimitMode::Peek)
        .await
        .unwrap();
    assert_eq!(peek.count, 5);

    let jobs: Vec<_> = (0..24)
        .map(|_| new_job("default", Duration::ZERO))
        .collect();
    stores[0].push(&jobs).await.unwrap();
    let w = worker(&stores[0], "w", LEASE).await;
    let got = stores[0]
        .reserve(Claim::new(&w, &q(&["default"]), 24))
        .await
        .unwrap();
    let tasks: Vec<_> = got
        .iter()
        .enumerate()
        .map(|(i, job)| {
            let store = stores[i % stores.len()].clone();
            let w = w.clone();
            let request = SlotRequest {
                key: "provider".into(),
                limit: 3,
                job_id: job.id.clone(),
                token: job.token,
                expire_after: None,
            };
            tokio::spawn(async move { store.acquire_slot(&w, &request).await.unwrap() })
        })
        .collect();
    let mut taken = 0;
    for t in tasks {
        taken += usize::from(t.await.unwrap());
    }
    assert_eq!(taken, 3, "never more holders than the limit");
}
