//! The store conformance suite on MySQL / MariaDB, each test in a fresh database of its own,
//! plus the checks only this store needs: concurrent claims without deadlocks, server
//! versions, reconnecting after the server kills the connections, and polled wake-ups across
//! processes.
//!
//! The server comes from `SPOOL_TEST_MYSQL_URL` (default `mysql://root@127.0.0.1:3306/test`).
//! When it can't be reached the tests are skipped, except under `CI=true`, where that is a
//! failure.
#![cfg(feature = "mysql")]

mod support;

use spool::store::Claim;
use spool::store::{AdminStore, QueueStore};
use std::{collections::HashSet, time::Duration};

use spool::{
    StoreError,
    store::{
        NewJob, Settlement, WorkerInfo,
        mysql::{Flavor, MysqlStore, ServerVersion},
    },
};
use spool_conformance::new_job;
use sqlx::{Connection, MySqlConnection};

fn url() -> String {
    support::mysql_url()
}

/// Opens a store in a new, empty, not yet migrated database; `None` when the server is
/// unreachable (outside CI).
async fn open_fresh_database() -> Option<MysqlStore> {
    let fresh = support::mysql().await?;
    Some(
        MysqlStore::open(&fresh.url)
            .await
            .expect("open the fresh database"),
    )
}

spool_conformance::conformance_tests!(support::mysql(), skip {
    envelopes_that_are_not_utf8_fail_alone =>
        "the envelope column is utf8mb4 LONGTEXT: strict mode refuses bytes that are not UTF-8",
    times_that_are_not_numbers_fail_alone =>
        "available_at is BIGINT: strict mode refuses anything but a number",
    ready_ids_without_their_job_leave_a_record =>
        "a row is its job: there is no ready list to hold an id without its data",
});

/// The fixture's raw writes reach the store's own tables.
#[tokio::test]
async fn raw_writes_reach_the_store() {
    let Some(fresh) = support::mysql().await else {
        return;
    };
    support::raw_job_row_is_seen(
        &fresh,
        "INSERT INTO spool_jobs (id, queue, job, envelope, available_at, created_at)
         VALUES (?, 'default', 'noop', ?, 0, 0)",
    )
    .await;
    fresh.cleanup().await;
}

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
                    .settle_and_reserve(&acks, Claim::new(&id, &queues, BATCH))
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
    let got = store
        .reserve(Claim::new("w", &queues, 5))
        .await
        .expect("reserve");
    assert_eq!(got.len(), 5);
    let acks: Vec<Settlement> = got.iter().map(complete).collect();
    let (applied, more) = store
        .settle_and_reserve(&acks, Claim::new("w", &queues, 5))
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
async fn futures_join<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
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
    let got = other.reserve(Claim::new("w", &queues, 1)).await.unwrap();
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

    let got = other.reserve(Claim::new("w", &queues, 1)).await.unwrap();
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
