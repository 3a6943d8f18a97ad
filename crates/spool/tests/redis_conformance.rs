//! The store conformance suite on Redis, each test under a fresh key prefix of its own, plus
//! the checks only Redis needs: the eviction-policy guard, script reloading after
//! `SCRIPT FLUSH`, wake-ups published by another connection, and reconnecting after the
//! server drops the store's connection.
//!
//! The server comes from `SPOOL_TEST_REDIS_URL` (default `redis://127.0.0.1:6379/0`). When it
//! can't be reached the tests are skipped, except under `CI=true`, where that is a failure.
//! The tests never flush the database: they only touch keys under their own prefixes.
#![cfg(feature = "redis")]

mod support;

use spool::store::Claim;
use spool::store::{AdminStore, QueueStore};
use std::{sync::Arc, time::Duration};

use spool::{
    StoreError,
    store::redis::{RedisStore, driver},
};
use spool_conformance::new_job;

fn url() -> String {
    support::redis_url()
}

/// Opens a store under a new prefix, not yet migrated; `None` when the server is unreachable
/// (outside CI).
async fn open_fresh_prefix() -> Option<RedisStore> {
    let fresh = support::redis().await?;
    let _policy = support::POLICY.read().await;
    Some(
        RedisStore::open(&fresh.url)
            .await
            .expect("open the fresh prefix"),
    )
}

fn new_prefix() -> String {
    support::unique_name()
}

async fn connection(url: &str) -> Result<driver::aio::MultiplexedConnection, driver::RedisError> {
    support::redis_connection(url).await
}

/// Deletes a test's keys when it ends (also when it fails).
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let prefix = self.0.clone();
        // A plain thread with a runtime of its own: the test's runtime may be shutting down.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            let _ = rt.block_on(RedisStore::delete_prefix(&url(), &prefix));
        })
        .join();
    }
}

/// A fresh migrated store for a Redis-specific test, with its keys deleted afterwards.
async fn scratch() -> Option<(Arc<RedisStore>, Cleanup)> {
    let store = open_fresh_prefix().await?;
    store.migrate().await.expect("migrate a fresh prefix");
    let cleanup = Cleanup(store.prefix().to_string());
    Some((Arc::new(store), cleanup))
}

spool_conformance::conformance_tests!(support::redis());

/// The fixture's raw commands reach the store's own keys.
#[tokio::test]
async fn raw_writes_reach_the_store() {
    let Some(fresh) = support::redis().await else {
        return;
    };
    support::raw_meta_is_seen(&fresh).await;
    fresh.cleanup().await;
}

// ---- Redis-specific checks ------------------------------------------------------------------

#[tokio::test]
async fn prefixes_and_urls_are_checked_before_connecting() {
    for bad in ["", "a:b", "a{b}", "x*"] {
        let err = RedisStore::open_with_prefix("redis://nowhere.invalid/0", bad)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{bad}: {err}");
    }
    let err = RedisStore::open("redis://nowhere.invalid/0?allow_eviction=perhaps")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::BadUrl(_)), "{err}");
}

/// Sets the server's eviction policy while `check` runs, then restores `noeviction` (the
/// policy Spool wants; the test server is Spool's own), also when the check panics.
async fn with_policy<Fut>(policy: &str, check: Fut)
where
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut conn = connection(&url()).await.expect("connect");
    let _exclusive = support::POLICY.write().await;
    let set = |policy: &str| {
        driver::cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory-policy")
            .arg(policy)
            .clone()
    };
    let () = set(policy)
        .query_async(&mut conn)
        .await
        .expect("CONFIG SET maxmemory-policy");
    let outcome = tokio::spawn(check).await;
    let () = set("noeviction")
        .query_async(&mut conn)
        .await
        .expect("restore maxmemory-policy noeviction");
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicting_server_is_refused_unless_allowed() {
    // Skips (or fails under CI) like the others when there is no server.
    let Some((_, _cleanup)) = scratch().await else {
        return;
    };
    let prefix = new_prefix();
    let _cleanup_too = Cleanup(prefix.clone());
    let refused = prefix.clone();
    with_policy("allkeys-lru", async move {
        let prefix = refused;
        let err = RedisStore::open_with_prefix(&url(), &prefix)
            .await
            .expect_err("allkeys-lru must be refused");
        let message = err.to_string();
        assert!(
            message.contains("maxmemory-policy") && message.contains("allkeys-lru"),
            "{message}"
        );
        assert!(!err.is_unavailable(), "a refusal is not a transient error");
        let sep = if url().contains('?') { '&' } else { '?' };
        let allowed = format!("{}{sep}allow_eviction=true&prefix={prefix}", url());
        let store = RedisStore::open(&allowed)
            .await
            .expect("allow_eviction=true overrides the refusal");
        store.migrate().await.unwrap();
        assert_eq!(store.prefix(), prefix);
    })
    .await;
    with_policy("volatile-lru", async move {
        // Spool sets no TTLs, so volatile-* policies never evict its keys.
        RedisStore::open_with_prefix(&url(), &prefix)
            .await
            .expect("volatile-lru is accepted");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_are_reloaded_after_a_flush() {
    let Some((store, _cleanup)) = scratch().await else {
        return;
    };
    store
        .push(&[new_job("default", Duration::ZERO)])
        .await
        .unwrap();
    let mut conn = connection(&url()).await.unwrap();
    let () = driver::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    // Every call after the flush gets NOSCRIPT first, loads its script and retries.
    assert_eq!(store.stats().await.unwrap().queues[0].pending, 1);
    store
        .push(&[new_job("default", Duration::ZERO)])
        .await
        .unwrap();
    let info = spool::store::WorkerInfo {
        id: "w".into(),
        host: "h".into(),
        pid: 1,
        queues: vec!["default".into()],
    };
    store
        .register_worker(&info, Duration::from_secs(30))
        .await
        .unwrap();
    let got = store
        .reserve(Claim::new("w", &["default".to_string()], 10))
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wakeups_come_from_other_connections() {
    let Some((store, _cleanup)) = scratch().await else {
        return;
    };
    let mut wakeups = store.wakeups();
    // The subscription signals once when it is established; take that one first.
    assert!(wakeups.wait(Duration::from_secs(10)).await);
    // A second handle (its own connections, as in another process) pushes.
    let other = store.reopen().await.unwrap();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        other
            .push(&[new_job("default", Duration::ZERO)])
            .await
            .unwrap();
    });
    assert!(
        wakeups.wait(Duration::from_secs(10)).await,
        "no wake-up after another connection pushed"
    );
    // A bare PUBLISH on the channel is enough, whoever sends it.
    let mut conn = connection(&url()).await.unwrap();
    let channel = format!("{{{}}}:wakeup", store.prefix());
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _: i64 = driver::cmd("PUBLISH")
            .arg(channel)
            .arg("x")
            .query_async(&mut conn)
            .await
            .unwrap();
    });
    assert!(wakeups.wait(Duration::from_secs(10)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_reconnects_after_the_server_drops_it() {
    let Some((store, _cleanup)) = scratch().await else {
        return;
    };
    let queue = vec!["default".to_string()];
    let info = spool::store::WorkerInfo {
        id: "w".into(),
        host: "h".into(),
        pid: 1,
        queues: queue.clone(),
    };
    store
        .register_worker(&info, Duration::from_secs(30))
        .await
        .unwrap();
    let jobs: Vec<_> = (0..20)
        .map(|_| new_job("default", Duration::ZERO))
        .collect();
    store.push(&jobs).await.unwrap();
    let first = store.reserve(Claim::new("w", &queue, 10)).await.unwrap();
    assert_eq!(first.len(), 10);
    // The server drops the store's connection mid-run. Only this store's: `TYPE normal` would
    // also cut the connections of the tests running beside this one.
    let mut admin = connection(&url()).await.unwrap();
    let killed: i64 = driver::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(store.client_id().await.unwrap())
        .arg("TYPE")
        .arg("normal")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(killed, 1);
    // The next calls may fail, and then only as "unavailable" (the worker retries); within a
    // few attempts the store is back and nothing was lost.
    let settlements: Vec<_> = first
        .iter()
        .map(|j| spool::store::Settlement::complete(j.id.clone(), j.token))
        .collect();
    let mut applied = None;
    for _ in 0..50 {
        match store.settle("w", &settlements).await {
            Ok(flags) => {
                applied = Some(flags);
                break;
            }
            Err(e) => {
                assert!(e.is_unavailable(), "{e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    assert_eq!(applied.expect("reconnected"), vec![true; 10]);
    let rest = store.reserve(Claim::new("w", &queue, 20)).await.unwrap();
    assert_eq!(rest.len(), 10);
    assert_eq!(store.stats().await.unwrap().processed, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settlements_through_another_handle_find_their_queue() {
    let Some((store, _cleanup)) = scratch().await else {
        return;
    };
    let queues = vec!["a".to_string(), "b".to_string()];
    let info = spool::store::WorkerInfo {
        id: "w".into(),
        host: "h".into(),
        pid: 1,
        queues: queues.clone(),
    };
    store
        .register_worker(&info, Duration::from_secs(30))
        .await
        .unwrap();
    store
        .push(&[new_job("a", Duration::ZERO), new_job("b", Duration::ZERO)])
        .await
        .unwrap();
    let got = store.reserve(Claim::new("w", &queues, 1)).await.unwrap();
    assert_eq!(
        got[0].queue, "a",
        "a later queue only when earlier ones are empty"
    );
    let got_b = store.reserve(Claim::new("w", &queues, 1)).await.unwrap();
    assert_eq!(got_b[0].queue, "b");
    // A handle that did not reserve them looks the queue up.
    let other = store.reopen().await.unwrap();
    let done: Vec<_> = got
        .iter()
        .chain(&got_b)
        .map(|j| spool::store::Settlement::complete(j.id.clone(), j.token))
        .collect();
    assert_eq!(other.settle("w", &done).await.unwrap(), [true, true]);
    assert_eq!(other.settle("w", &done).await.unwrap(), [false, false]);
    assert_eq!(store.stats().await.unwrap().processed, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_batches_keep_order_and_a_repeat_settles_once() {
    let Some((store, _cleanup)) = scratch().await else {
        return;
    };
    // More jobs than one script call takes: the chunks of one queue stay in push order.
    let jobs: Vec<_> = (0..2500)
        .map(|_| new_job("default", Duration::ZERO))
        .collect();
    store.push(&jobs).await.unwrap();
    let info = spool::store::WorkerInfo {
        id: "w".into(),
        host: "h".into(),
        pid: 1,
        queues: vec!["default".into()],
    };
    store
        .register_worker(&info, Duration::from_secs(30))
        .await
        .unwrap();
    let got = store
        .reserve(Claim::new("w", &["default".to_string()], 3000))
        .await
        .unwrap();
    let ids: Vec<&str> = got.iter().map(|j| j.id.as_str()).collect();
    let pushed: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, pushed);
    // The same completion twice in one batch is applied once.
    let done = spool::store::Settlement::complete(got[0].id.clone(), got[0].token);
    assert_eq!(
        store.settle("w", &[done.clone(), done]).await.unwrap(),
        [true, false]
    );
    assert_eq!(store.stats().await.unwrap().processed, 1);
}

/// A follow-up bound for another queue is written to the settling queue's outbox with the
/// settlement; if delivering it fails (here: the target queue's push script errors, as a
/// crash between the two steps would leave it), the reaper delivers it later, exactly once,
/// and a repeated delivery after it ran pushes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_survives_a_crash_before_its_delivery() {
    let Some((store, _cleanup)) = scratch().await else {
        return;
    };
    let prefix = store.prefix().to_string();
    let outbox = format!("{{{prefix}:default}}:outbox");
    let target_seq = format!("{{{prefix}:next}}:seq");
    let mut conn = connection(&url()).await.expect("connect");
    let info = spool::store::WorkerInfo {
        id: "w".into(),
        host: "h".into(),
        pid: 1,
        queues: vec!["default".into(), "next".into()],
    };
    store
        .register_worker(&info, Duration::from_secs(30))
        .await
        .unwrap();
    store
        .push(&[new_job("default", Duration::ZERO)])
        .await
        .unwrap();
    let got = store
        .reserve(Claim::new("w", &["default".to_string()], 1))
        .await
        .unwrap();

    // Break pushes to `next`: its sequence key holds the wrong type.
    let () = driver::cmd("HSET")
        .arg(&target_seq)
        .arg("x")
        .arg("y")
        .query_async(&mut conn)
        .await
        .map(|_: i64| ())
        .unwrap();
    let next = new_job("next", Duration::ZERO);
    let done = spool::store::Settlement::Complete {
        id: got[0].id.clone(),
        token: got[0].token,
        follow_ups: vec![next.clone()],
        result: None,
    };
    assert_eq!(store.settle("w", &[done]).await.unwrap(), [true]);
    assert!(
        store.job(&next.id).await.unwrap().is_none(),
        "not delivered"
    );
    let left: std::collections::HashMap<String, String> = driver::cmd("HGETALL")
        .arg(&outbox)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(left.len(), 1, "kept in the outbox");

    // The next reap delivers it, once.
    let _: i64 = driver::cmd("DEL")
        .arg(&target_seq)
        .query_async(&mut conn)
        .await
        .unwrap();
    store.reap(5).await.unwrap();
    store.reap(5).await.unwrap();
    assert!(store.job(&next.id).await.unwrap().is_some(), "delivered");
    let pending: u64 = store
        .stats()
        .await
        .unwrap()
        .queues
        .iter()
        .filter(|s| s.name == "next")
        .map(|s| s.pending)
        .sum();
    assert_eq!(pending, 1);
    let remaining: i64 = driver::cmd("HLEN")
        .arg(&outbox)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(remaining, 0, "the outbox is cleared");

    // It runs; a delivery repeated afterwards (a crash before the outbox was cleared) pushes
    // nothing.
    let ran = store
        .reserve(Claim::new("w", &["next".to_string()], 1))
        .await
        .unwrap();
    assert_eq!(ran[0].id, next.id);
    let done = spool::store::Settlement::complete(ran[0].id.clone(), ran[0].token);
    assert_eq!(store.settle("w", &[done]).await.unwrap(), [true]);
    for (id, entry) in &left {
        let _: i64 = driver::cmd("HSET")
            .arg(&outbox)
            .arg(id)
            .arg(entry)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    store.reap(5).await.unwrap();
    assert!(
        store.job(&next.id).await.unwrap().is_none(),
        "not pushed again"
    );
    assert_eq!(store.stats().await.unwrap().processed, 2);
}

/// A heartbeat extends the worker's lease only in the queues where it holds jobs, not in every
/// queue the store has ever seen (each one a round-trip's worth of work on every heartbeat).
#[tokio::test]
async fn heartbeats_touch_only_the_queues_where_the_worker_holds_jobs() {
    let Some(fresh) = support::redis().await else {
        return;
    };
    let prefix = spool_conformance::Fixture::key_prefix(&fresh).expect("a Redis prefix");
    let store = fresh.connect().await;
    let worker = spool::store::WorkerInfo {
        id: "w".into(),
        host: "test-host".into(),
        pid: std::process::id(),
        queues: vec!["a".into(), "b".into()],
    };
    let lease = Duration::from_secs(30);
    store.register_worker(&worker, lease).await.unwrap();
    store
        .push(&[new_job("a", Duration::ZERO), new_job("b", Duration::ZERO)])
        .await
        .unwrap();
    let queues = ["a".to_string(), "b".to_string()];
    let got = store.reserve(Claim::new("w", &queues, 2)).await.unwrap();
    assert_eq!(got.len(), 2);
    let done_b = got.iter().find(|j| j.queue == "b").unwrap();
    store
        .settle(
            "w",
            &[spool::store::Settlement::complete(
                done_b.id.clone(),
                done_b.token,
            )],
        )
        .await
        .unwrap();
    let mut conn = connection(&support::redis_url()).await.unwrap();
    let mut lease_in = async |queue: &str| -> f64 {
        driver::cmd("ZSCORE")
            .arg(format!("{{{prefix}:{queue}}}:leases"))
            .arg("w")
            .query_async(&mut conn)
            .await
            .unwrap()
    };
    let (a_before, b_before) = (lease_in("a").await, lease_in("b").await);
    tokio::time::sleep(Duration::from_millis(20)).await;
    store.heartbeat("w", lease).await.unwrap();
    assert!(
        lease_in("a").await > a_before,
        "extended where it holds a job"
    );
    assert_eq!(
        lease_in("b").await,
        b_before,
        "untouched where it holds none"
    );
    fresh.cleanup().await;
}

/// The queue list does not keep every name ever used (issue: it only grew): a queue that
/// holds nothing and had no push for the idle time leaves it, its processed count stays in
/// the total, and a push through a handle that still believes it listed brings it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_empty_queues_leave_the_queue_list_until_pushed_again() {
    let Some((store, _cleanup)) = scratch().await else {
        return;
    };
    let other = RedisStore::open_with_prefix(&url(), store.prefix())
        .await
        .expect("a second handle");
    // `other` lists `spent` and `busy` (and remembers it did).
    other
        .push(&[new_job("spent", Duration::ZERO)])
        .await
        .unwrap();
    other
        .push(&[new_job("busy", Duration::ZERO)])
        .await
        .unwrap();
    let info = spool::store::WorkerInfo {
        id: "w".into(),
        host: "h".into(),
        pid: 1,
        queues: vec!["spent".into()],
    };
    store
        .register_worker(&info, Duration::from_secs(30))
        .await
        .unwrap();
    let got = store
        .reserve(Claim::new("w", &["spent".to_string()], 10))
        .await
        .unwrap();
    let done = spool::store::Settlement::complete(got[0].id.clone(), got[0].token);
    assert_eq!(store.settle("w", &[done]).await.unwrap(), [true]);

    let listed = || async {
        let mut conn = connection(&url()).await.unwrap();
        let mut queues: Vec<String> = driver::cmd("SMEMBERS")
            .arg(format!("{{{}}}:queues", store.prefix()))
            .query_async(&mut conn)
            .await
            .unwrap();
        queues.sort();
        queues
    };
    assert_eq!(listed().await, ["busy", "spent"]);
    // Not idle for an hour yet: nothing leaves.
    assert_eq!(
        store
            .unlist_idle_queues(Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    // A queue's completed records keep it listed (so searches and pruning reach them) until
    // they are pruned.
    assert_eq!(store.unlist_idle_queues(Duration::ZERO).await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(2)).await;
    assert_eq!(store.prune_completed(Duration::ZERO).await.unwrap(), 1);
    assert_eq!(store.unlist_idle_queues(Duration::ZERO).await.unwrap(), 1);
    assert_eq!(
        listed().await,
        ["busy"],
        "only the queue holding nothing leaves"
    );
    assert_eq!(
        store.stats().await.unwrap().processed,
        1,
        "its count stays in the total"
    );

    other
        .push(&[new_job("spent", Duration::ZERO)])
        .await
        .unwrap();
    assert_eq!(listed().await, ["busy", "spent"], "a push lists it again");
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.processed, 1);
    let spent = stats
        .queues
        .iter()
        .find(|q| q.name == "spent")
        .expect("listed in stats");
    assert_eq!(spent.pending, 1);
}
