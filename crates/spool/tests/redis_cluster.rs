//! The Redis store on a Redis Cluster of three primaries that the tests start themselves
//! (`redis://host:port/0?cluster=true&node=host:port`): the whole conformance suite, each test
//! under a key prefix of its own; a queue whose slot moves to another node while a worker has
//! it open (`MOVED` is followed); and a queue whose node is down, which must not starve the
//! worker's other queues and loses nothing once the node is back. The worker-process kill -9
//! run and the workflows run on the cluster too (`multi_process.rs`, `workflows.rs`).
//!
//! Without `redis-server` and `redis-cli` the tests print `SKIPPED`; under `CI=true` that is
//! a failure.
#![cfg(feature = "redis")]

mod support;

use std::{sync::Arc, time::Duration};

use spool::{Registry, Store, Worker, WorkerConfig, store::JobFilter};
use spool_conformance::new_job;
use support::cluster::Cluster;

spool_conformance::conformance_tests!(support::redis_cluster());

/// A cluster of its own (the tests below move slots and kill nodes) and a store on it under
/// a fresh prefix; `None` when the Redis binaries are missing outside CI.
async fn own_cluster() -> Option<(Cluster, String, Arc<dyn Store>)> {
    let cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap()?;
    let prefix = support::unique_name();
    let url = format!("{}&prefix={prefix}", cluster.url);
    let store = spool::connect(&url).await.expect("connect to the cluster");
    Some((cluster, prefix, store))
}

async fn push(store: &Arc<dyn Store>, queue: &str, n: usize) {
    let jobs: Vec<_> = (0..n).map(|_| new_job(queue, Duration::ZERO)).collect();
    store.push(&jobs).await.expect("push");
}

/// How many jobs of `queue` are still in the store.
async fn left(store: &Arc<dyn Store>, queue: &str) -> usize {
    let filter = JobFilter {
        queue: Some(queue.to_string()),
        limit: Some(1000),
        ..JobFilter::default()
    };
    store.jobs(&filter).await.expect("list the queue").len()
}

fn worker_config(queues: &[&str], until_done: bool) -> WorkerConfig {
    WorkerConfig {
        queues: queues.iter().map(|q| q.to_string()).collect(),
        concurrency: 4,
        sleep: Duration::from_millis(50),
        until_done,
        ..WorkerConfig::default()
    }
}

/// The slot holding queue `a` moves to another node after the store handle learnt the slot
/// map: pushes and the worker follow `MOVED` to the new node and every job of both queues
/// runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_whose_slot_moved_is_followed() {
    let Some((cluster, prefix, store)) = own_cluster().await else {
        return;
    };
    push(&store, "a", 100).await;
    push(&store, "b", 100).await;
    let slot = cluster.slot(&format!("{{{prefix}:a}}"));
    let (from, _) = cluster.owner(slot);
    let to = *cluster.ports.iter().find(|&&p| p != from).unwrap();
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.move_slot(slot, to);
        cluster
    })
    .await
    .unwrap();
    assert_eq!(cluster.owner(slot).0, to, "the slot moved");
    // The same handle, whose slot map still says `from`.
    push(&store, "a", 50).await;
    let worker = Worker::new(
        store.clone(),
        Registry::with_builtins(),
        worker_config(&["a", "b"], true),
    );
    let exit = tokio::time::timeout(Duration::from_secs(60), worker.run())
        .await
        .expect("the worker finished in time")
        .expect("the worker ran");
    assert_eq!((exit.completed, exit.failed), (250, 0), "{exit:?}");
    assert_eq!((left(&store, "a").await, left(&store, "b").await), (0, 0));
}

/// Queue `down` lives on a node that is killed: the worker keeps running queue `up` (listed
/// after it, so `down` is tried first on every claim), and once the node is back (with its
/// append-only file) `down`'s jobs run too: nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_whose_node_is_down_does_not_starve_the_others() {
    let Some((cluster, prefix, store)) = own_cluster().await else {
        return;
    };
    // The node to kill: not the first seed (the wake-up subscription's), and not the one
    // holding the global keys (worker registration and heartbeats: losing those is losing the
    // lease, which stops any worker by design).
    let (global, _) = cluster.owner(cluster.slot(&format!("{{{prefix}}}")));
    let victim = *cluster
        .ports
        .iter()
        .find(|&&p| p != global && p != cluster.ports[0])
        .expect("a third node");
    let on_victim = |queue: &str| {
        cluster
            .owner(cluster.slot(&format!("{{{prefix}:{queue}}}")))
            .0
            == victim
    };
    let down = (0..)
        .map(|n| format!("down{n}"))
        .find(|q| on_victim(q))
        .unwrap();
    let up = (0..)
        .map(|n| format!("up{n}"))
        .find(|q| !on_victim(q))
        .unwrap();
    push(&store, &down, 40).await;
    push(&store, &up, 40).await;

    cluster.kill_node(victim);
    let worker = Worker::new(
        store.clone(),
        Registry::with_builtins(),
        worker_config(&[&down, &up], false),
    );
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while left(&store, &up).await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "queue {up} starved while {down}'s node was down"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Pushed while the node is down: still served.
    push(&store, &up, 10).await;
    while left(&store, &up).await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "new jobs on {up} starved"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let cluster = tokio::task::spawn_blocking(move || {
        cluster.start_node(victim);
        cluster.wait_ok();
        cluster
    })
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match store
            .jobs(&JobFilter {
                queue: Some(down.clone()),
                ..JobFilter::default()
            })
            .await
        {
            Ok(jobs) if jobs.is_empty() => break,
            _ => {}
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{down}'s jobs did not run after its node came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.signal();
    let exit = tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the worker stopped")
        .unwrap()
        .expect("the worker ran");
    assert_eq!((exit.completed, exit.failed), (90, 0), "{exit:?}");
    drop(cluster);
}
