//! The store conformance suite on MySQL / MariaDB (workflow checks included), each test in a
//! fresh database of its own, plus the checks only this store needs: concurrent claims without
//! deadlocks, concurrent first migrations, the upgrade from schema version 1, server versions,
//! reconnecting after the server kills the connections, polled wake-ups across processes, and
//! workflows on the hot path and under concurrent callers.
//!
//! The server comes from `SPOOL_TEST_MYSQL_URL` (default `mysql://root@127.0.0.1:3306/test`).
//! When it can't be reached the tests are skipped, except under `CI=true`, where that is a
//! failure.
#![cfg(feature = "mysql")]

mod support;

use spool::store::{AdminStore, QueueStore, WorkflowStore};
use std::{
    collections::HashSet,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use spool::{
    Store, StoreError,
    store::{
        NewJob, Settlement, WorkerInfo,
        conformance::new_job,
        mysql::{Flavor, MysqlStore, ServerVersion},
    },
};
use sqlx::{Connection, MySqlConnection};
use tokio::sync::OnceCell;

const DEFAULT_URL: &str = "mysql://root@127.0.0.1:3306/test";
/// Test databases are named `spool_test_<unix seconds>_<random>`.
const PREFIX: &str = "spool_test_";
/// Databases older than this are leftovers of earlier runs. Younger ones may belong to a test
/// running right now in another process, so they are left alone.
const LEFTOVER_AGE: Duration = Duration::from_secs(15 * 60);

fn url() -> String {
    std::env::var("SPOOL_TEST_MYSQL_URL").unwrap_or_else(|_| DEFAULT_URL.to_string())
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn new_database_name() -> String {
    format!("{PREFIX}{}_{:08x}", unix_secs(), fastrand::u32(..))
}

/// Opens a store in a new, empty, not yet migrated database; `None` when the server is
/// unreachable (outside CI).
async fn open_fresh_database() -> Option<MysqlStore> {
    let url = url();
    let name = new_database_name();
    let opened = match MysqlStore::create_database(&url, &name).await {
        Ok(()) => MysqlStore::open_in_database(&url, &name).await,
        Err(e) => Err(e),
    };
    match opened {
        Ok(store) => {
            LEFTOVERS_DROPPED
                .get_or_init(|| drop_leftover_databases(&url))
                .await;
            Some(store)
        }
        Err(e) if e.is_unavailable() => support::unreachable("MySQL", &url, &e),
        Err(e) => panic!(
            "cannot open MySQL at {url}: {e}; set SPOOL_TEST_MYSQL_URL to a server the tests may \
             create databases on"
        ),
    }
}

/// A fresh, migrated, empty store, as the conformance suite wants.
async fn fresh() -> Option<Arc<dyn Store>> {
    let store = open_fresh_database().await?;
    store.migrate().await.expect("migrate a fresh database");
    Some(Arc::new(store))
}

static LEFTOVERS_DROPPED: OnceCell<()> = OnceCell::const_new();

/// Drops the test databases earlier runs left behind (each test leaves its database, since the
/// suite owns the store until the test ends). Best effort: another test process may be doing
/// the same, so failures are reported and ignored.
async fn drop_leftover_databases(url: &str) {
    let mut conn = match MySqlConnection::connect(url).await {
        Ok(conn) => conn,
        Err(e) => return eprintln!("cannot drop leftover test databases: {e}"),
    };
    let names: Vec<String> = match sqlx::query_scalar(
        "SELECT CAST(SCHEMA_NAME AS CHAR) FROM information_schema.SCHEMATA
         WHERE SCHEMA_NAME LIKE 'spool\\_test\\_%'",
    )
    .fetch_all(&mut conn)
    .await
    {
        Ok(names) => names,
        Err(e) => return eprintln!("cannot list leftover test databases: {e}"),
    };
    let _ = conn.close().await;
    let cutoff = unix_secs().saturating_sub(LEFTOVER_AGE.as_secs());
    for name in names {
        let created = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        if created.is_some_and(|secs| secs < cutoff) {
            if let Err(e) = MysqlStore::drop_database(url, &name).await {
                eprintln!("cannot drop leftover test database {name}: {e}");
            }
        }
    }
}

spool::conformance_tests!(fresh());
spool::workflow_conformance_tests!(fresh());

// ---- MySQL-specific checks ------------------------------------------------------------------

fn worker_info(id: &str) -> WorkerInfo {
    WorkerInfo {
        id: id.into(),
        host: "test-host".into(),
        pid: std::process::id(),
        queues: vec!["default".into()],
    }
}

fn complete(j: &spool::store::ReservedJob) -> Settlement {
    Settlement::Complete {
        id: j.id.clone(),
        token: j.token,
        follow_ups: vec![],
        result: None,
    }
}

/// Eight workers, each a store of its own (as separate processes would be), claim 16 jobs at a
/// time from one queue and ack each batch while claiming the next: every job is completed
/// exactly once and no call fails (no deadlock or lock wait surfaces).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_workers_claiming_sixteen_at_a_time_never_deadlock() {
    const WORKERS: usize = 8;
    const JOBS: usize = 4000;
    const BATCH: usize = 16;
    let Some(first) = open_fresh_database().await else {
        return;
    };
    first.migrate().await.unwrap();
    let jobs: Vec<NewJob> = (0..JOBS)
        .map(|_| new_job("default", Duration::ZERO))
        .collect();
    first.push(&jobs).await.unwrap();
    let database = first.database().to_string();
    let mut tasks = Vec::new();
    for n in 0..WORKERS {
        let store = MysqlStore::open_in_database(&url(), &database)
            .await
            .unwrap();
        tasks.push(tokio::spawn(async move {
            let id = format!("w{n}");
            store
                .register_worker(&worker_info(&id), Duration::from_secs(60))
                .await
                .unwrap();
            let queues = vec!["default".to_string()];
            let mut done: Vec<String> = Vec::new();
            let mut acks: Vec<Settlement> = Vec::new();
            loop {
                let (applied, got) = store
                    .settle_and_reserve(&id, &acks, &queues, BATCH)
                    .await
                    .unwrap_or_else(|e| panic!("worker {id}: {e}"));
                assert!(
                    applied.iter().all(|ok| *ok),
                    "worker {id}: an ack was refused"
                );
                done.extend(acks.iter().map(|s| s.id().to_string()));
                if got.is_empty() {
                    break done;
                }
                acks = got.iter().map(complete).collect();
            }
        }));
    }
    let mut seen = HashSet::new();
    for task in tasks {
        for id in task.await.unwrap() {
            assert!(seen.insert(id), "a job was completed twice");
        }
    }
    assert_eq!(seen.len(), JOBS);
    let stats = first.stats().await.unwrap();
    assert_eq!(stats.processed, JOBS as u64);
    assert!(stats.queues.iter().all(|q| q.pending + q.reserved == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_migrations_are_safe() {
    let Some(first) = open_fresh_database().await else {
        return;
    };
    let database = first.database().to_string();
    let mut stores = vec![Arc::new(first)];
    for _ in 0..3 {
        let store = MysqlStore::open_in_database(&url(), &database)
            .await
            .unwrap();
        stores.push(Arc::new(store));
    }
    let tasks: Vec<_> = stores
        .iter()
        .map(|s| {
            let s = s.clone();
            tokio::spawn(async move { s.migrate().await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().expect("concurrent migrate");
    }
    stores[0]
        .push(&[new_job("default", Duration::ZERO)])
        .await
        .unwrap();
    assert_eq!(stores[3].stats().await.unwrap().queues[0].pending, 1);
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let Some(store) = open_fresh_database().await else {
        return;
    };
    store.migrate().await.unwrap();
    let mut conn = MySqlConnection::connect(&url()).await.unwrap();
    let bump = format!(
        "INSERT INTO `{}`.spool_migrations (version, applied_at) VALUES (99, 0)",
        store.database()
    );
    sqlx::query(sqlx::AssertSqlSafe(bump))
        .execute(&mut conn)
        .await
        .unwrap();
    match store.migrate().await {
        Err(StoreError::SchemaTooNew {
            found: 99,
            supported: 2,
        }) => {}
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[test]
fn server_versions_decide_support() {
    let cases = [
        ("10.11.19-MariaDB-0+deb12u1", Flavor::MariaDb, true),
        ("8.0.36", Flavor::MySql, true),
        ("5.7.44", Flavor::MySql, false),
        ("10.5.2-MariaDB", Flavor::MariaDb, false),
    ];
    for (text, flavor, supported) in cases {
        let version = ServerVersion::parse(text).expect(text);
        assert_eq!(version.flavor, flavor, "{text}");
        assert_eq!(version.is_supported(), supported, "{text}");
    }
    // The refusal names the minimum versions.
    assert!(spool::store::mysql::MINIMUM_VERSIONS.contains("MySQL 8.0.1"));
    assert!(spool::store::mysql::MINIMUM_VERSIONS.contains("MariaDB 10.6"));
}

#[tokio::test]
async fn the_server_in_use_is_supported() {
    let Some(store) = open_fresh_database().await else {
        return;
    };
    assert!(store.server_version().is_supported());
}

#[tokio::test]
async fn database_names_must_be_plain_identifiers() {
    // Validation happens before connecting, so no server is needed.
    for bad in ["Spool", "1jobs", "my-jobs", "a`; DROP DATABASE x; --", ""] {
        let err = MysqlStore::open_in_database("mysql://nowhere.invalid/db", bad)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{bad}: {err}");
    }
}

/// The server's connection ids of a store's sessions, as seen from another connection.
async fn sessions_of(conn: &mut MySqlConnection, database: &str) -> Vec<u64> {
    sqlx::query_scalar(
        "SELECT CAST(ID AS SIGNED) FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()",
    )
    .bind(database)
    .fetch_all(conn)
    .await
    .map(|ids: Vec<i64>| ids.into_iter().map(|id| id as u64).collect())
    .unwrap()
}

/// When the server kills every connection of a store (a restart, a failover, an operator),
/// the store's next operations open new ones and work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_work_after_the_server_kills_the_connections() {
    let Some(store) = open_fresh_database().await else {
        return;
    };
    store.migrate().await.unwrap();
    let database = store.database().to_string();
    // Fill the pool with several live connections.
    let jobs: Vec<NewJob> = (0..20)
        .map(|_| new_job("default", Duration::ZERO))
        .collect();
    store.push(&jobs).await.unwrap();
    store
        .register_worker(&worker_info("w"), Duration::from_secs(60))
        .await
        .unwrap();
    let busy: Vec<_> = (0..4).map(|_| store.stats()).collect();
    for stats in futures_join(busy).await {
        stats.unwrap();
    }
    let mut admin = MySqlConnection::connect(&url()).await.unwrap();
    let sessions = sessions_of(&mut admin, &database).await;
    assert!(!sessions.is_empty(), "the store holds connections");
    for id in &sessions {
        sqlx::query(sqlx::AssertSqlSafe(format!("KILL {id}")))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    // Every kind of call, each on whatever the pool hands out (dead connections included).
    let queues = vec!["default".to_string()];
    let got = store.reserve("w", &queues, 5).await.expect("reserve");
    assert_eq!(got.len(), 5);
    let acks: Vec<Settlement> = got.iter().map(complete).collect();
    let (applied, more) = store
        .settle_and_reserve("w", &acks, &queues, 5)
        .await
        .expect("settle and reserve");
    assert_eq!((applied, more.len()), (vec![true; 5], 5));
    assert!(
        store
            .heartbeat("w", Duration::from_secs(60))
            .await
            .expect("heartbeat")
            .lease_kept
    );
    assert_eq!(store.stats().await.expect("stats").processed, 5);
    store
        .push(&[new_job("default", Duration::ZERO)])
        .await
        .expect("push");
    assert!(
        store
            .next_available_in(&queues)
            .await
            .expect("next")
            .is_some()
    );
    let old: HashSet<u64> = sessions.into_iter().collect();
    let now = sessions_of(&mut admin, &database).await;
    assert!(now.iter().all(|id| !old.contains(id)), "new connections");
}

/// Runs futures concurrently on this task and collects their outputs.
async fn futures_join<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut out = Vec::with_capacity(futures.len());
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in pinned.iter_mut().zip(done.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.extend(done.into_iter().flatten());
    out
}

/// Another process's push, release, retry and run-now wake an idle worker here, found by
/// polling; a quiet store does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_processes_wake_idle_workers_by_polling() {
    let Some(listening) = open_fresh_database().await else {
        return;
    };
    listening.migrate().await.unwrap();
    // Another process: its own store (own pool, own local signal) on the same database.
    let other = MysqlStore::open_in_database(&url(), listening.database())
        .await
        .unwrap();
    let mut wakeups = listening.wakeups();
    // Let the poller take its first reading, then expect quiet.
    while wakeups.wait(Duration::from_millis(300)).await {}
    assert!(
        !wakeups.wait(Duration::from_millis(600)).await,
        "nothing happened yet"
    );

    let started = std::time::Instant::now();
    let later = new_job("default", Duration::from_secs(3600));
    other.push(std::slice::from_ref(&later)).await.unwrap();
    assert!(
        wakeups.wait(Duration::from_secs(5)).await,
        "no wake-up after another store's push"
    );
    // After a long quiet spell the poll interval is at its slowest (250 ms), with slack.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    while wakeups.wait(Duration::from_millis(300)).await {}
    assert!(other.run_job_now(&later.id).await.unwrap());
    assert!(
        wakeups.wait(Duration::from_secs(5)).await,
        "no wake-up after run-now"
    );

    other
        .register_worker(&worker_info("w"), Duration::from_secs(30))
        .await
        .unwrap();
    let queues = vec!["default".to_string()];
    let got = other.reserve("w", &queues, 1).await.unwrap();
    while wakeups.wait(Duration::from_millis(300)).await {}
    let release = Settlement::Release {
        id: got[0].id.clone(),
        token: got[0].token,
        delay: Duration::ZERO,
        kind: spool::store::ReleaseKind::Released,
        error: None,
    };
    assert_eq!(other.settle("w", &[release]).await.unwrap(), [true]);
    assert!(
        wakeups.wait(Duration::from_secs(5)).await,
        "no wake-up after a release"
    );

    let got = other.reserve("w", &queues, 1).await.unwrap();
    let fail = Settlement::Fail {
        id: got[0].id.clone(),
        token: got[0].token,
        error: "x".into(),
        causes: vec![],
        follow_ups: vec![],
    };
    assert_eq!(other.settle("w", &[fail]).await.unwrap(), [true]);
    while wakeups.wait(Duration::from_millis(300)).await {}
    let retried = other
        .retry_failed(&spool::store::RetrySelector::All { queue: None })
        .await
        .unwrap();
    assert_eq!(retried, std::slice::from_ref(&later.id));
    assert!(
        wakeups.wait(Duration::from_secs(5)).await,
        "no wake-up after a retry"
    );
}

/// Stale and repeated settlements in one batch: results are per item, and the fast path for
/// completions hands over to the general one when it cannot tell them apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_settle_batch_mixes_every_kind() {
    use spool::store::{ReleaseKind, RetrySelector};
    let Some(store) = open_fresh_database().await else {
        return;
    };
    store.migrate().await.unwrap();
    // The last job's envelope is not JSON: the store keeps it as is and must still be able to
    // fail and retry it (the worker is the one that reports a malformed envelope).
    let mut jobs: Vec<NewJob> = (0..3).map(|_| new_job("default", Duration::ZERO)).collect();
    jobs[2].envelope = "not json {".into();
    store.push(&jobs).await.unwrap();
    store
        .register_worker(&worker_info("w"), Duration::from_secs(30))
        .await
        .unwrap();
    let queues = vec!["default".to_string()];
    let got = store.reserve("w", &queues, 3).await.unwrap();
    assert_eq!(got[2].envelope, "not json {");
    let batch = [
        Settlement::Fail {
            id: got[2].id.clone(),
            token: got[2].token,
            error: "bad".into(),
            causes: vec!["why".into()],
            follow_ups: vec![],
        },
        Settlement::Complete {
            id: got[0].id.clone(),
            token: got[0].token + 1,
            follow_ups: vec![],
            result: None,
        },
        Settlement::Release {
            id: got[1].id.clone(),
            token: got[1].token,
            delay: Duration::ZERO,
            kind: ReleaseKind::RetryAfterError,
            error: Some("again".into()),
        },
        Settlement::Complete {
            id: got[0].id.clone(),
            token: got[0].token,
            follow_ups: vec![],
            result: None,
        },
    ];
    // Results are per settlement: the stale completion of job 0 is refused, the fresh one
    // applied.
    assert_eq!(
        store.settle("w", &batch).await.unwrap(),
        [true, false, true, true]
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

    // Completions only, one of them stale: the fast path cannot tell which, so the general
    // path decides.
    let again = store.reserve("w", &queues, 3).await.unwrap();
    assert_eq!(again.len(), 2);
    let acks = [
        Settlement::Complete {
            id: again[0].id.clone(),
            token: again[0].token,
            follow_ups: vec![],
            result: None,
        },
        Settlement::Complete {
            id: again[1].id.clone(),
            token: again[1].token - 1,
            follow_ups: vec![],
            result: None,
        },
    ];
    assert_eq!(store.settle("w", &acks).await.unwrap(), [true, false]);
    assert_eq!(store.stats().await.unwrap().processed, 2);
}

// ---- Workflows on MySQL: the hot path, concurrency and the upgrade from version 1 ----------

fn envelope_job(configure: impl FnOnce(&mut spool::Envelope)) -> NewJob {
    let mut envelope = spool::Envelope::new("noop", "default", serde_json::json!({}));
    configure(&mut envelope);
    NewJob::new(&envelope, Duration::ZERO).unwrap()
}

/// Plain completions and jobs with workflow state settled together on the hot path: the fast
/// statement leaves the latter alone and the general path applies every side effect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_path_applies_side_effects() {
    use spool::{
        Unique,
        store::{NewBatch, PushOutcome, SlotRequest},
    };
    let Some(store) = open_fresh_database().await else {
        return;
    };
    store.migrate().await.unwrap();
    let queue = ["default".to_string()];
    store
        .register_worker(&worker_info("w"), Duration::from_secs(30))
        .await
        .unwrap();

    // A unique lock is released by the completion, and a claimed "until processing" job frees
    // its key with the claim.
    let locked = envelope_job(|e| e.options.unique = Some(Unique::new("doc")));
    let processing =
        envelope_job(|e| e.options.unique = Some(Unique::new("mail").until_processing()));
    store.push(std::slice::from_ref(&locked)).await.unwrap();
    let got = store.reserve("w", &queue, 1).await.unwrap();
    store.push(&[processing]).await.unwrap();
    let (applied, claimed) = store
        .settle_and_reserve("w", &[complete(&got[0])], &queue, 5)
        .await
        .unwrap();
    assert_eq!((applied, claimed.len()), (vec![true], 1));
    for key in ["doc", "mail"] {
        let again = envelope_job(|e| e.options.unique = Some(Unique::new(key)));
        assert_eq!(
            store.push(&[again]).await.unwrap(),
            [PushOutcome::Queued],
            "{key}"
        );
    }

    // A batch job and a slot holder among plain completions.
    let batch_id = spool::new_id();
    let in_batch = envelope_job(|e| e.batch_id = Some(batch_id.clone()));
    let then = new_job("then", Duration::ZERO);
    let batch = spool::store::NewBatch {
        id: batch_id.clone(),
        name: "b".into(),
        then: Some(then.clone()),
        ..NewBatch::default()
    };
    store.create_batch(&batch, &[in_batch]).await.unwrap();
    store
        .push(&[new_job("default", Duration::ZERO)])
        .await
        .unwrap();
    let mut held = claimed;
    held.extend(store.reserve("w", &queue, 10).await.unwrap());
    assert_eq!(held.len(), 5);
    let slot = |job: &spool::store::ReservedJob| SlotRequest {
        key: "provider".into(),
        limit: 1,
        job_id: job.id.clone(),
        token: job.token,
        expire_after: None,
    };
    assert!(store.acquire_slot("w", &slot(&held[4])).await.unwrap());
    let acks: Vec<Settlement> = held.iter().map(complete).collect();
    let (applied, _) = store
        .settle_and_reserve("w", &acks, &queue, 5)
        .await
        .unwrap();
    assert_eq!(applied, [true; 5]);
    let info = store.batch(&batch_id).await.unwrap().unwrap();
    assert_eq!((info.pending, info.progress), (0, 100));
    assert!(
        store.job(&then.id).await.unwrap().is_some(),
        "`then` was pushed"
    );
    assert_eq!(store.stats().await.unwrap().processed, 6);
    // The slot was freed with its holder's completion.
    store
        .push(&[new_job("default", Duration::ZERO)])
        .await
        .unwrap();
    let next = store.reserve("w", &queue, 10).await.unwrap();
    assert!(store.acquire_slot("w", &slot(&next[0])).await.unwrap());
}

/// Several stores (so several pools: callers really run at once) share one limiter key and one
/// slot key: never more hits or holders than the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limits_and_slots_hold_under_concurrent_callers() {
    use spool::store::{LimitMode, SlotRequest};
    let Some(first) = open_fresh_database().await else {
        return;
    };
    first.migrate().await.unwrap();
    let database = first.database().to_string();
    let mut stores = vec![Arc::new(first)];
    for _ in 0..3 {
        let other = MysqlStore::open_in_database(&url(), &database)
            .await
            .unwrap();
        stores.push(Arc::new(other));
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
    stores[0]
        .register_worker(&worker_info("w"), Duration::from_secs(30))
        .await
        .unwrap();
    let got = stores[0]
        .reserve("w", &["default".to_string()], 24)
        .await
        .unwrap();
    let tasks: Vec<_> = got
        .iter()
        .enumerate()
        .map(|(i, job)| {
            let store = stores[i % stores.len()].clone();
            let request = SlotRequest {
                key: "provider".into(),
                limit: 3,
                job_id: job.id.clone(),
                token: job.token,
                expire_after: None,
            };
            tokio::spawn(async move { store.acquire_slot("w", &request).await.unwrap() })
        })
        .collect();
    let mut taken = 0;
    for t in tasks {
        taken += usize::from(t.await.unwrap());
    }
    assert_eq!(taken, 3, "never more holders than the limit");
}

/// A database as schema version 1 left it, with a job queued, is upgraded in place; running
/// version 2 again over a half-done upgrade is harmless.
#[tokio::test]
async fn version_1_databases_are_upgraded_in_place() {
    let Some(store) = open_fresh_database().await else {
        return;
    };
    let database = store.database().to_string();
    let mut conn = MySqlConnection::connect(&url()).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("USE `{database}`")))
        .execute(&mut conn)
        .await
        .unwrap();
    let v1 = include_str!("../src/store/mysql/sql/schema.sql");
    let mut setup: Vec<String> = vec![
        "CREATE TABLE spool_migrations (version BIGINT NOT NULL PRIMARY KEY, applied_at BIGINT NOT NULL) ENGINE = InnoDB".into(),
    ];
    setup.extend(
        v1.split(";\n")
            .map(|s| {
                s.lines()
                    .filter(|l| !l.trim_start().starts_with("--"))
                    .map(|l| l.split(" --").next().unwrap_or(l))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .filter(|s| !s.trim().is_empty()),
    );
    setup.push("INSERT INTO spool_migrations VALUES (1, 0)".into());
    setup.push(
        "INSERT INTO spool_jobs (id, queue, job, envelope, available_at, created_at)
         VALUES ('old', 'default', 'noop', '{}', 0, 0)"
            .into(),
    );
    // Half of version 2 already applied (a crash during the upgrade).
    setup.push("ALTER TABLE spool_jobs ADD COLUMN batch_id VARCHAR(255) NULL".into());
    for statement in setup {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    store.migrate().await.unwrap();
    let version: i64 = sqlx::query_scalar("SELECT MAX(version) FROM spool_migrations")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(version, 2);
    store.migrate().await.unwrap();
    let old = store.job("old").await.unwrap().unwrap();
    assert!(old.progress.is_none());
    store
        .register_worker(&worker_info("w"), Duration::from_secs(30))
        .await
        .unwrap();
    let got = store
        .reserve("w", &["default".to_string()], 1)
        .await
        .unwrap();
    assert_eq!(got[0].id, "old");
    assert_eq!(
        store.settle("w", &[complete(&got[0])]).await.unwrap(),
        [true]
    );
}
