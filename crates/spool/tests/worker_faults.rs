//! The worker under store faults: a settlement the store always refuses, a store that cannot
//! take settlements while the worker stops, and a heartbeat that fails or dies (D-1).
#![cfg(feature = "sqlite")]

#[path = "support/faulty.rs"]
mod faulty;
mod support;

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use spool::{
    Registry, Spool, Store, Worker, WorkerConfig,
    builtin::{Noop, Sleep},
    store::{FailedFilter, JobState},
    worker::ExitReason,
};

use faulty::Faulty;

async fn faulty_store() -> (Arc<Faulty>, Arc<dyn Store>) {
    let faulty = Faulty::wrap(support::sqlite_store().await.0);
    let store: Arc<dyn Store> = faulty.clone();
    (faulty, store)
}

fn config() -> WorkerConfig {
    WorkerConfig {
        sleep: Duration::from_millis(50),
        ..WorkerConfig::default()
    }
}

async fn run(worker: Worker) -> spool::WorkerExit {
    tokio::time::timeout(Duration::from_secs(30), worker.run())
        .await
        .expect("the worker stopped in time")
        .expect("the worker ran")
}

/// Item 19: one settlement the store refuses for good fails its job with the store's reason;
/// the others are written and the worker goes on (before, it resent the batch forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settlement_the_store_refuses_fails_its_job_and_the_rest_are_written() {
    let (faulty, store) = faulty_store().await;
    let spool = Spool::new(store.clone());
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(spool.dispatch(Noop {}).await.unwrap().id);
    }
    *faulty.faults.refuse.lock().unwrap() = Some(ids[2].clone());
    let worker = Worker::new(
        store.clone(),
        Registry::with_builtins(),
        WorkerConfig {
            until_done: true,
            ..config()
        },
    );
    let exit = run(worker).await;
    assert_eq!(exit.reason, ExitReason::Done);
    let record = store.failed_job(&ids[2]).await.unwrap().expect("failed");
    assert!(
        record.error.contains("refused") && record.error.contains("out of range"),
        "{}",
        record.error
    );
    assert_eq!(
        store.failed_jobs(&FailedFilter::default()).await.unwrap().1,
        1
    );
    for id in [&ids[0], &ids[1], &ids[3], &ids[4]] {
        assert!(store.job(id).await.unwrap().is_none(), "{id} completed");
    }
}

/// Item 19: a second stop signal stops the worker even while its settlements cannot be
/// written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_stops_a_worker_that_cannot_settle() {
    let (faulty, store) = faulty_store().await;
    Spool::new(store.clone())
        .dispatch(Sleep { ms: 300 })
        .await
        .unwrap();
    let worker = Worker::new(store.clone(), Registry::with_builtins(), config());
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());
    tokio::time::sleep(Duration::from_millis(150)).await;
    faulty.faults.settle_down.store(true, Ordering::SeqCst);
    stop.signal();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(!running.is_finished(), "still trying to write the result");
    stop.signal();
    let exit = tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("the second signal stopped the worker")
        .unwrap()
        .unwrap();
    assert_eq!(exit.reason, ExitReason::Signal);
}

/// Item 20: a heartbeat failing for most of the lease stops the worker: it reserves nothing
/// more, drops its running jobs' results (the reaper hands them on) and exits `LeaseLost`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_heartbeat_stops_the_worker_before_its_lease_ends() {
    let (faulty, store) = faulty_store().await;
    let spool = Spool::new(store.clone());
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(spool.dispatch(Sleep { ms: 4000 }).await.unwrap().id);
    }
    faulty.faults.heartbeat_down.store(true, Ordering::SeqCst);
    let worker = Worker::new(
        store.clone(),
        Registry::with_builtins(),
        WorkerConfig {
            concurrency: 1,
            lease: Duration::from_millis(900),
            max_time: Some(Duration::from_secs(10)),
            ..config()
        },
    );
    let started = std::time::Instant::now();
    let exit = run(worker).await;
    assert_eq!(exit.reason, ExitReason::LeaseLost);
    assert_eq!(exit.reason.exit_code(), 13);
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!((exit.reserved, exit.completed), (1, 0));
    // Nothing completed: every job is still queued, for the reaper or the next worker.
    let states: Vec<JobState> = job_states(&store, &ids).await;
    assert_eq!(states.len(), 3, "{states:?}");
}

/// Item 20: a dead heartbeat thread is fatal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_heartbeat_thread_stops_the_worker() {
    let (faulty, store) = faulty_store().await;
    Spool::new(store.clone())
        .dispatch(Sleep { ms: 4000 })
        .await
        .unwrap();
    faulty.faults.heartbeat_panics.store(true, Ordering::SeqCst);
    let worker = Worker::new(
        store.clone(),
        Registry::with_builtins(),
        WorkerConfig {
            lease: Duration::from_millis(900),
            max_time: Some(Duration::from_secs(10)),
            ..config()
        },
    );
    let started = std::time::Instant::now();
    let exit = run(worker).await;
    assert_eq!(exit.reason, ExitReason::LeaseLost);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

async fn job_states(store: &Arc<dyn Store>, ids: &[String]) -> Vec<JobState> {
    let mut states = Vec::new();
    for id in ids {
        states.push(store.job(id).await.unwrap().expect("queued").state);
    }
    states
}
