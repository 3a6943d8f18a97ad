//! Workers' leases: the reaper, poison pills and deregistering.

use std::time::Duration;

use spool::store::{JobState, WorkerInfo};

use crate::{
    Fixture,
    helpers::{LEASE, complete, new_job, push_default, reserve_default, worker},
};

/// The reaper returns the jobs of workers whose lease expired, refunding the attempt and
/// counting a recovery; a worker that heartbeats keeps its jobs.
pub async fn reaper_recovers_jobs_of_dead_workers(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    push_default(&store, 2).await;
    // Long enough that a loaded machine still reaps before it ends (D-6: slack on upper bounds).
    let short = Duration::from_secs(3);
    let dead = worker(&store, "dead", short).await;
    let alive = worker(&store, "alive", short).await;
    let d = reserve_default(&store, &dead, 1).await;
    let a = reserve_default(&store, &alive, 1).await;
    assert_eq!(
        store.reap(3).await.unwrap().recovered,
        0,
        "leases still current"
    );
    for _ in 0..16 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(store.heartbeat(&alive, short).await.unwrap().lease_kept);
    }
    let report = store.reap(3).await.unwrap();
    assert_eq!(
        (report.recovered, report.failed, report.workers_removed),
        (1, 0, 1)
    );
    let info = store.job(&d[0].id).await.unwrap().unwrap();
    assert_eq!(
        (info.state, info.attempts, info.recoveries),
        (JobState::Pending, 0, 1)
    );
    assert_eq!(
        store.job(&a[0].id).await.unwrap().unwrap().state,
        JobState::Reserved
    );
    // The dead worker's late result is refused, and its heartbeat says the lease is gone.
    assert_eq!(
        store
            .settle(&dead, &[complete(&d[0].id, d[0].token)])
            .await
            .unwrap(),
        [false]
    );
    assert!(!store.heartbeat(&dead, short).await.unwrap().lease_kept);
}

/// A job whose workers keep dying fails as a poison pill at the `max_recoveries`-th loss.
pub async fn poison_pills_fail_after_max_recoveries(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let job = new_job("default", Duration::ZERO);
    store.push(std::slice::from_ref(&job)).await.unwrap();
    let short = Duration::from_millis(100);
    for round in 1..=3 {
        let w = worker(&store, "doomed", short).await;
        assert_eq!(reserve_default(&store, &w, 1).await.len(), 1);
        tokio::time::sleep(Duration::from_millis(150)).await;
        let report = store.reap(3).await.unwrap();
        if round < 3 {
            assert_eq!((report.recovered, report.failed), (1, 0), "round {round}");
        } else {
            assert_eq!((report.recovered, report.failed), (0, 1), "round {round}");
        }
    }
    let record = store
        .failed_job(&job.id)
        .await
        .unwrap()
        .expect("failed as poison pill");
    assert_eq!(record.error, "worker lost 3 times while running this job");
}

/// Deregistering hands back the worker's jobs without using an attempt.
pub async fn deregister_hands_jobs_back(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let job = new_job("default", Duration::ZERO);
    store.push(std::slice::from_ref(&job)).await.unwrap();
    let w = worker(&store, "w", LEASE).await;
    reserve_default(&store, &w, 1).await;
    assert_eq!(
        store.stats().await.unwrap().workers[0].busy,
        vec![job.id.clone()]
    );
    store.deregister_worker(&w).await.unwrap();
    let info = store.job(&job.id).await.unwrap().unwrap();
    assert_eq!((info.state, info.attempts), (JobState::Pending, 0));
    assert!(store.stats().await.unwrap().workers.is_empty());
}

/// `stats` tells when each live worker was last seen and its lease, so a worker killed within
/// the last lease shows as silent instead of live.
pub async fn stats_tell_when_each_worker_was_last_seen(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let lease = Duration::from_secs(4);
    let beating = worker(&store, "beating", lease).await;
    let silent = worker(&store, "silent", lease).await;
    let find = |stats: &spool::store::Stats, id: &str| {
        stats
            .workers
            .iter()
            .find(|w| w.id == id)
            .cloned()
            .expect("a live worker is listed")
    };
    let stats = store.stats().await.unwrap();
    let fresh = find(&stats, &silent);
    assert_eq!(fresh.lease_ms, Some(4000));
    assert!(fresh.last_seen_ms.unwrap() < 2000, "{fresh:?}");
    assert!(!fresh.is_silent());
    // More than half the lease without a heartbeat (D-6: slack for a loaded machine).
    tokio::time::sleep(Duration::from_millis(2300)).await;
    store.heartbeat(&beating, lease).await.unwrap();
    let stats = store.stats().await.unwrap();
    let gone = find(&stats, &silent);
    assert!(gone.last_seen_ms.unwrap() >= 2000, "{gone:?}");
    assert!(gone.is_silent(), "{gone:?}");
    let alive = find(&stats, &beating);
    assert!(!alive.is_silent(), "{alive:?}");
}

/// A worker whose lease ran out leaves `workers` for `expired_workers`, with how long ago,
/// until the reaper removes it.
pub async fn expired_workers_are_listed_until_reaped(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let gone = worker(&store, "gone", Duration::from_millis(1000)).await;
    let alive = worker(&store, "alive", LEASE).await;
    assert!(store.stats().await.unwrap().expired_workers.is_empty());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stats = store.stats().await.unwrap();
    assert!(stats.workers.iter().all(|w| w.id != gone));
    assert!(stats.workers.iter().any(|w| w.id == alive));
    assert_eq!(
        stats.expired_workers.len(),
        1,
        "{:?}",
        stats.expired_workers
    );
    let expired = &stats.expired_workers[0];
    assert_eq!(expired.id, gone);
    // D-6: a lower bound exact, the upper one loose.
    assert!((400..60_000).contains(&expired.expired_ms), "{expired:?}");
    store.reap(5).await.unwrap();
    assert!(store.stats().await.unwrap().expired_workers.is_empty());
}

/// `work --max-workers`: a worker registers only while fewer than the cap serve any of its
/// queues, workers starting together never pass the cap, and an expired worker no longer
/// counts.
pub async fn registration_within_a_cap_is_atomic(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let info = |name: &str, queues: &[&str]| WorkerInfo {
        id: format!("{name}-{}", spool::new_id()),
        host: "test-host".into(),
        pid: std::process::id(),
        queues: queues.iter().map(|q| q.to_string()).collect(),
    };
    let lease = Duration::from_secs(30);
    assert!(
        store
            .register_worker_within(&info("a1", &["a"]), lease, 2)
            .await
            .unwrap()
    );
    assert!(
        store
            .register_worker_within(&info("a2", &["b", "a"]), lease, 2)
            .await
            .unwrap()
    );
    assert!(
        !store
            .register_worker_within(&info("a3", &["a"]), lease, 2)
            .await
            .unwrap(),
        "two workers already serve `a`"
    );
    assert!(
        !store
            .register_worker_within(&info("a4", &["b", "z"]), lease, 1)
            .await
            .unwrap(),
        "one serves `b`"
    );
    assert!(
        store
            .register_worker_within(&info("c1", &["c"]), lease, 1)
            .await
            .unwrap()
    );
    let live = store.stats().await.unwrap().workers;
    assert_eq!(
        live.len(),
        3,
        "refused workers are not registered: {live:?}"
    );

    // Eight starting together under a cap of three: three pass.
    let attempts = (0..8).map(|n| {
        let store = store.clone();
        let worker = info(&format!("x{n}"), &["x"]);
        tokio::spawn(async move {
            store
                .register_worker_within(&worker, lease, 3)
                .await
                .unwrap()
        })
    });
    let mut passed = 0;
    for attempt in attempts.collect::<Vec<_>>() {
        passed += usize::from(attempt.await.unwrap());
    }
    assert_eq!(passed, 3);

    // A lease that ran out no longer counts.
    let short = info("e1", &["e"]);
    assert!(
        store
            .register_worker_within(&short, Duration::from_millis(1000), 1)
            .await
            .unwrap()
    );
    assert!(
        !store
            .register_worker_within(&info("e2", &["e"]), lease, 1)
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(
        store
            .register_worker_within(&info("e3", &["e"]), lease, 1)
            .await
            .unwrap()
    );
}
