//! Checks of the queue part of the contract ([`QueueStore`](spool::store::QueueStore)):
//! pushing, reserving, wake-ups, the store clock, and (in the submodules) settling, workers
//! and migrations.

use std::time::Duration;

use spool::{
    Envelope,
    store::{NewJob, PushOutcome, Settlement},
};

use crate::{
    Fixture,
    helpers::{
        LEASE, complete, ids, new_job, push_with_retry_window, q, reserve_default, reserve_from,
        worker,
    },
};

pub mod migrations;
pub mod settle;
pub mod stored_values;
pub mod unreadable;
pub mod workers;

/// Jobs come back in push order, each with attempt 1 and a token; reserved jobs are hidden.
pub async fn push_then_reserve_in_order(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let jobs: Vec<NewJob> = (0..5).map(|_| new_job("default", Duration::ZERO)).collect();
    let outcomes = store.push(&jobs).await.unwrap();
    assert_eq!(outcomes, vec![PushOutcome::Queued; 5]);
    let w = worker(&store, "w", LEASE).await;
    let got = reserve_default(&store, &w, 3).await;
    assert_eq!(
        got.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
        ids(&jobs)[..3]
    );
    assert!(
        got.iter()
            .all(|j| j.attempts == 1 && j.recoveries == 0 && j.queue == "default")
    );
    let envelope = Envelope::decode(&got[0].envelope).unwrap();
    assert_eq!(envelope.id, jobs[0].id);
    let rest = reserve_default(&store, &w, 10).await;
    assert_eq!(
        rest.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
        ids(&jobs)[3..]
    );
    assert!(reserve_default(&store, &w, 10).await.is_empty());
}

/// A job id that already exists is reported, not duplicated, also within one batch.
pub async fn duplicate_ids_are_already_queued(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let job = new_job("default", Duration::ZERO);
    assert_eq!(
        store.push(std::slice::from_ref(&job)).await.unwrap(),
        [PushOutcome::Queued]
    );
    let other = new_job("default", Duration::ZERO);
    let outcomes = store
        .push(&[job.clone(), other.clone(), other])
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [
            PushOutcome::AlreadyQueued,
            PushOutcome::Queued,
            PushOutcome::AlreadyQueued
        ]
    );
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.queues[0].pending, 2);
}

/// A delayed job is not reserved before its time and is reserved after it (store clock).
pub async fn delayed_jobs_wait_their_turn(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let delayed = new_job("default", Duration::from_millis(400));
    store.push(std::slice::from_ref(&delayed)).await.unwrap();
    let w = worker(&store, "w", LEASE).await;
    assert!(reserve_default(&store, &w, 1).await.is_empty());
    let next = store
        .next_available_in(&q(&["default"]))
        .await
        .unwrap()
        .expect("a delayed job");
    assert!(
        next <= Duration::from_millis(400) && next > Duration::from_millis(100),
        "{next:?}"
    );
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.queues[0].pending, stats.queues[0].delayed), (0, 1));
    tokio::time::sleep(Duration::from_millis(450)).await;
    let got = reserve_default(&store, &w, 1).await;
    assert_eq!(got.len(), 1);
    assert!(
        store
            .next_available_in(&q(&["default"]))
            .await
            .unwrap()
            .is_none()
    );
}

/// Queues are drained in the order given, and never more than `limit` jobs are taken.
pub async fn reserve_follows_queue_priority(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let low: Vec<NewJob> = (0..3).map(|_| new_job("low", Duration::ZERO)).collect();
    let high: Vec<NewJob> = (0..2).map(|_| new_job("high", Duration::ZERO)).collect();
    store.push(&low).await.unwrap();
    store.push(&high).await.unwrap();
    let w = worker(&store, "w", LEASE).await;
    let got = reserve_from(&store, &w, &["high", "low"], 3).await;
    let queues: Vec<&str> = got.iter().map(|j| j.queue.as_str()).collect();
    assert_eq!(queues, ["high", "high", "low"]);
    assert!(reserve_from(&store, &w, &["other"], 3).await.is_empty());
}

/// A push wakes an idle subscriber.
pub async fn pushes_wake_idle_workers(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let mut wakeups = store.wakeups();
    let pusher = store.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        pusher
            .push(&[new_job("default", Duration::ZERO)])
            .await
            .unwrap();
    });
    let started = std::time::Instant::now();
    assert!(
        wakeups.wait(Duration::from_secs(10)).await,
        "no wake-up after a push"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// The store computes the retry deadline from the job's retry window with its own clock.
pub async fn retry_deadline_comes_from_the_store_clock(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    push_with_retry_window(&store, "default").await;
    let w = worker(&store, "w", LEASE).await;
    let got = reserve_default(&store, &w, 1).await;
    let until = got[0].retry_until.expect("a deadline");
    let window = until - got[0].reserved_at;
    assert!((55_000..=60_000).contains(&window), "{window}");
}

/// Many workers reserving at once never get the same job twice, and nothing is lost.
pub async fn concurrent_reservers_never_share_a_job(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let jobs: Vec<NewJob> = (0..400)
        .map(|_| new_job("default", Duration::ZERO))
        .collect();
    store.push(&jobs).await.unwrap();
    let mut tasks = Vec::new();
    for n in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let w = worker(&store, &format!("w{n}"), LEASE).await;
            let mut mine = Vec::new();
            loop {
                let got = reserve_default(&store, &w, 7).await;
                if got.is_empty() {
                    break mine;
                }
                let done: Vec<Settlement> = got.iter().map(|j| complete(&j.id, j.token)).collect();
                assert!(store.settle(&w, &done).await.unwrap().iter().all(|ok| *ok));
                mine.extend(got.into_iter().map(|j| j.id));
            }
        }));
    }
    let mut seen = std::collections::HashSet::new();
    for t in tasks {
        for id in t.await.unwrap() {
            assert!(seen.insert(id), "a job was reserved twice");
        }
    }
    assert_eq!(seen.len(), 400);
    assert_eq!(store.stats().await.unwrap().processed, 400);
}
