//! The store conformance suite on PostgreSQL, each test in a fresh schema of its own, plus the
//! checks only PostgreSQL needs: schema names and LISTEN/NOTIFY wake-ups.
//!
//! The server comes from `SPOOL_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). When it can't be reached the tests are skipped,
//! except under `CI=true`, where that is a failure.
#![cfg(feature = "postgres")]

mod support;

use spool::store::Claim;
use spool::store::{AdminStore, QueueStore};
use std::time::Duration;

use spool::{StoreError, store::postgres::PostgresStore};
use spool_conformance::{Fixture, new_job};
use sqlx::{Connection, PgConnection};

fn url() -> String {
    support::postgres_url()
}

/// Opens a store in a new, not yet migrated schema; `None` when the server is unreachable
/// (outside CI).
async fn open_fresh_schema() -> Option<PostgresStore> {
    let fresh = support::postgres().await?;
    Some(
        PostgresStore::open(&fresh.url)
            .await
            .expect("open the fresh schema"),
    )
}

spool_conformance::conformance_tests!(support::postgres(), skip {
    envelopes_that_are_not_utf8_fail_alone =>
        "the envelope column is TEXT in a UTF-8 database: PostgreSQL refuses bytes that are not UTF-8",
    times_that_are_not_numbers_fail_alone =>
        "available_at is BIGINT: PostgreSQL refuses anything but a number",
    ready_ids_without_their_job_leave_a_record =>
        "a row is its job: there is no ready list to hold an id without its data",
});

/// The fixture's raw writes reach the store's own tables (through the schema's search path).
#[tokio::test]
async fn raw_writes_reach_the_store() {
    let Some(fresh) = support::postgres().await else {
        return;
    };
    support::raw_job_row_is_seen(
        &fresh,
        "INSERT INTO jobs (id, queue, job, envelope, available_at, created_at)
         VALUES ($1, 'default', 'noop', $2, 0, 0)",
    )
    .await;
    fresh.cleanup().await;
}

// ---- PostgreSQL-specific checks -------------------------------------------------------------

#[tokio::test]
async fn schema_names_must_be_plain_identifiers() {
    // Validation happens before connecting, so no server is needed.
    for bad in [
        "Spool",
        "1jobs",
        "my-jobs",
        "a\"; DROP TABLE x; --",
        "pg_spool",
        "",
    ] {
        let err = PostgresStore::open_in_schema("postgres://nowhere.invalid/db", bad)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{bad}: {err}");
    }
}

/// The backend pids LISTENing on a store's channel.
async fn listeners(conn: &mut PgConnection, schema: &str) -> Vec<i32> {
    sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE query LIKE $1")
        .bind(format!("LISTEN \"{schema}_jobs\"%"))
        .fetch_all(conn)
        .await
        .unwrap()
}

/// Waits up to ten seconds for the store in `schema` to have `want` listening connections
/// other than `old`; returns their pids.
async fn await_listeners(
    conn: &mut PgConnection,
    schema: &str,
    want: usize,
    old: Option<i32>,
) -> Vec<i32> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let pids = listeners(conn, schema).await;
        if pids.len() == want && old.is_none_or(|old| !pids.contains(&old)) {
            return pids;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {pids:?} listening, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_from_another_process_wake_idle_workers() {
    let Some(listening) = open_fresh_schema().await else {
        return;
    };
    listening.migrate().await.unwrap();
    let schema = listening.schema().to_string();
    // Another process: its own store (own pool, own local signal) on the same schema.
    let pusher = PostgresStore::open_in_schema(&url(), &schema)
        .await
        .unwrap();
    let mut conn = PgConnection::connect(&url()).await.unwrap();

    let mut wakeups = listening.wakeups();
    // The first wake-up comes when the listener is connected (it cannot know what it missed).
    assert!(
        wakeups.wait(Duration::from_secs(10)).await,
        "no wake-up once listening"
    );
    assert!(
        !wakeups.wait(Duration::from_millis(200)).await,
        "nothing happened yet"
    );
    pusher
        .push(&[new_job("default", Duration::ZERO)])
        .await
        .unwrap();
    assert!(
        wakeups.wait(Duration::from_secs(5)).await,
        "no wake-up after another store's push"
    );

    // A lost listening connection is re-established, and its loss itself wakes the workers
    // (notifications sent meanwhile are gone).
    let before = await_listeners(&mut conn, &schema, 1, None).await;
    assert_eq!(before.len(), 1, "one listening connection per store");
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(before[0])
        .execute(&mut conn)
        .await
        .unwrap();
    assert!(
        wakeups.wait(Duration::from_secs(10)).await,
        "no wake-up after reconnecting"
    );
    await_listeners(&mut conn, &schema, 1, Some(before[0])).await;
    while wakeups.wait(Duration::from_millis(200)).await {}
    pusher
        .push(&[new_job("default", Duration::ZERO)])
        .await
        .unwrap();
    assert!(
        wakeups.wait(Duration::from_secs(5)).await,
        "no wake-up after the reconnect"
    );

    // Dropping the store stops the listener and closes its connection.
    drop(wakeups);
    drop(listening);
    await_listeners(&mut conn, &schema, 0, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_retries_and_run_now_wake_other_processes() {
    let Some(listening) = open_fresh_schema().await else {
        return;
    };
    listening.migrate().await.unwrap();
    let other = PostgresStore::open_in_schema(&url(), listening.schema())
        .await
        .unwrap();
    let mut wakeups = listening.wakeups();
    assert!(
        wakeups.wait(Duration::from_secs(10)).await,
        "no wake-up once listening"
    );

    let later = new_job("default", Duration::from_secs(3600));
    other.push(std::slice::from_ref(&later)).await.unwrap();
    while wakeups.wait(Duration::from_millis(200)).await {}
    assert!(other.run_job_now(&later.id).await.unwrap());
    assert!(
        wakeups.wait(Duration::from_secs(5)).await,
        "no wake-up after run-now"
    );

    let info = spool::store::WorkerInfo {
        id: "w".into(),
        host: "h".into(),
        pid: 1,
        queues: vec!["default".into()],
    };
    other
        .register_worker(&info, Duration::from_secs(30))
        .await
        .unwrap();
    let got = other
        .reserve(Claim::new("w", &["default".to_string()], 1))
        .await
        .unwrap();
    while wakeups.wait(Duration::from_millis(200)).await {}
    let fail = spool::store::Settlement::fail(got[0].id.clone(), got[0].token, "x".into(), vec![]);
    assert_eq!(other.settle("w", &[fail]).await.unwrap(), [true]);
    assert!(
        !wakeups.wait(Duration::from_millis(300)).await,
        "a failure frees nothing to run"
    );
    let retried = other
        .retry_failed(&spool::store::RetrySelector::All { queue: None })
        .await
        .unwrap();
    assert_eq!(retried, std::slice::from_ref(&later.id));
    assert!(
        wakeups.wait(Duration::from_secs(5)).await,
        "no wake-up after a retry"
    );

    let got = other
        .reserve(Claim::new("w", &["default".to_string()], 1))
        .await
        .unwrap();
    while wakeups.wait(Duration::from_millis(200)).await {}
    let release = spool::store::Settlement::Release {
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
}

/// The claim cursor (the store's `cursor.rs`) never skips a row for good: a job that becomes
/// ready behind jobs already claimed — as when a transaction that pushed it commits late — is
/// claimed by the next reserve after one that came back short.
#[tokio::test]
async fn a_job_ready_behind_the_claim_cursor_is_still_claimed() {
    let Some(fresh) = support::postgres().await else {
        return;
    };
    let store = fresh.connect().await;
    let jobs: Vec<_> = (0..3).map(|_| new_job("default", Duration::ZERO)).collect();
    store.push(&jobs).await.unwrap();
    let worker = spool::store::WorkerInfo {
        id: "w".into(),
        host: "test-host".into(),
        pid: std::process::id(),
        queues: vec!["default".into()],
    };
    store
        .register_worker(&worker, Duration::from_secs(30))
        .await
        .unwrap();
    let queues = ["default".to_string()];
    let claim = |limit| Claim::new("w", &queues, limit);
    let ids = |got: Vec<spool::store::ReservedJob>| -> Vec<String> {
        got.into_iter().map(|j| j.id).collect()
    };
    // A full claim: the next one starts after the second job.
    let first = ids(store.reserve(claim(2)).await.unwrap());
    assert_eq!(first, [jobs[0].id.clone(), jobs[1].id.clone()]);

    let late = spool::new_id();
    fresh
        .raw(spool_conformance::Raw::Sql {
            statement: "INSERT INTO jobs (id, queue, job, envelope, available_at, created_at)
                        VALUES ($1, 'default', 'noop', $2, 0, 0)"
                .into(),
            binds: vec![
                spool_conformance::Value::Text(late.clone()),
                spool_conformance::Value::Text(jobs[0].envelope.clone()),
            ],
        })
        .await
        .unwrap();
    let mut rest = ids(store.reserve(claim(5)).await.unwrap());
    rest.extend(ids(store.reserve(claim(5)).await.unwrap()));
    rest.sort();
    let mut expected = vec![jobs[2].id.clone(), late];
    expected.sort();
    assert_eq!(rest, expected, "every ready job is claimed");
    fresh.cleanup().await;
}
