//! The store conformance suite on PostgreSQL, each test in a fresh schema of its own, plus the
//! checks only PostgreSQL needs: schema names, migration versions and LISTEN/NOTIFY wake-ups.
//!
//! The server comes from `SPOOL_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). When it can't be reached the tests are skipped,
//! except under `CI=true`, where that is a failure.
#![cfg(feature = "postgres")]

mod support;

use spool::store::{AdminStore, QueueStore, WorkflowStore};
use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use spool::{
    Store, StoreError,
    store::{conformance::new_job, postgres::PostgresStore},
};
use sqlx::{Connection, PgConnection};
use tokio::sync::OnceCell;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// Test schemas are named `spool_test_<unix seconds>_<random>`.
const PREFIX: &str = "spool_test_";
/// Schemas older than this are leftovers of earlier runs. Younger ones may belong to a test
/// running right now in another process, so they are left alone.
const LEFTOVER_AGE: Duration = Duration::from_secs(15 * 60);

fn url() -> String {
    std::env::var("SPOOL_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_string())
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn new_schema_name() -> String {
    format!("{PREFIX}{}_{:08x}", unix_secs(), fastrand::u32(..))
}

/// Opens a store in a new, not yet migrated schema; `None` when the server is unreachable
/// (outside CI).
async fn open_fresh_schema() -> Option<PostgresStore> {
    let url = url();
    match PostgresStore::open_in_schema(&url, &new_schema_name()).await {
        Ok(store) => {
            LEFTOVERS_DROPPED
                .get_or_init(|| drop_leftover_schemas(&url))
                .await;
            Some(store)
        }
        Err(e) if e.is_unavailable() => support::unreachable("PostgreSQL", &url, &e),
        Err(e) => panic!(
            "cannot open PostgreSQL at {url}: {e}; set SPOOL_TEST_POSTGRES_URL to a database the tests may use"
        ),
    }
}

/// A fresh, migrated, empty store, as the conformance suite wants.
async fn fresh() -> Option<Arc<dyn Store>> {
    let store = open_fresh_schema().await?;
    store.migrate().await.expect("migrate a fresh schema");
    Some(Arc::new(store))
}

static LEFTOVERS_DROPPED: OnceCell<()> = OnceCell::const_new();

/// Drops the test schemas earlier runs left behind (each test leaves its schema, since the
/// suite owns the store until the test ends). Best effort: another test process may be doing
/// the same, so failures are reported and ignored.
async fn drop_leftover_schemas(url: &str) {
    let mut conn = match PgConnection::connect(url).await {
        Ok(conn) => conn,
        Err(e) => return eprintln!("cannot drop leftover test schemas: {e}"),
    };
    let names: Vec<String> = match sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname::text, $1)",
    )
    .bind(PREFIX)
    .fetch_all(&mut conn)
    .await
    {
        Ok(names) => names,
        Err(e) => return eprintln!("cannot list leftover test schemas: {e}"),
    };
    let cutoff = unix_secs().saturating_sub(LEFTOVER_AGE.as_secs());
    for name in names {
        let created = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        if created.is_some_and(|secs| secs < cutoff) {
            // The name came from the catalogue and matched our own pattern: plain identifier.
            let drop = format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE");
            if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
                .execute(&mut conn)
                .await
            {
                eprintln!("cannot drop leftover test schema {name}: {e}");
            }
        }
    }
    let _ = conn.close().await;
}

spool::conformance_tests!(fresh());
spool::workflow_conformance_tests!(fresh());

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_migrations_are_safe() {
    let Some(first) = open_fresh_schema().await else {
        return;
    };
    let mut stores = vec![Arc::new(first)];
    for _ in 0..3 {
        let store = PostgresStore::open_in_schema(&url(), stores[0].schema())
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
    let Some(store) = open_fresh_schema().await else {
        return;
    };
    store.migrate().await.unwrap();
    let mut conn = PgConnection::connect(&url()).await.unwrap();
    let bump = format!(
        "INSERT INTO \"{}\".spool_migrations (version, applied_at) VALUES (99, 0)",
        store.schema()
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
        .reserve("w", &["default".to_string()], 1)
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
        .reserve("w", &["default".to_string()], 1)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_settle_batch_mixes_every_kind() {
    use spool::store::{NewJob, ReleaseKind, RetrySelector, Settlement, WorkerInfo};
    let Some(store) = open_fresh_schema().await else {
        return;
    };
    store.migrate().await.unwrap();
    // The last job's envelope is not JSON: the store keeps it as is and must still be able to
    // fail and retry it (the worker is the one that reports a malformed envelope).
    let mut jobs: Vec<NewJob> = (0..3).map(|_| new_job("default", Duration::ZERO)).collect();
    jobs[2].envelope = "not json {".into();
    store.push(&jobs).await.unwrap();
    let info = WorkerInfo {
        id: "w".into(),
        host: "h".into(),
        pid: 1,
        queues: vec![],
    };
    store
        .register_worker(&info, Duration::from_secs(30))
        .await
        .unwrap();
    let got = store
        .reserve("w", &["default".to_string()], 3)
        .await
        .unwrap();
    assert_eq!(
        got.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
        [&jobs[0].id, &jobs[1].id, &jobs[2].id]
    );
    assert_eq!(got[2].envelope, "not json {");
    let batch = [
        Settlement::fail(got[2].id.clone(), got[2].token, "bad".into(), vec![]),
        Settlement::complete(got[0].id.clone(), got[0].token + 1),
        Settlement::Release {
            id: got[1].id.clone(),
            token: got[1].token,
            delay: Duration::ZERO,
            kind: ReleaseKind::RetryAfterError,
            error: Some("again".into()),
        },
        Settlement::complete(got[0].id.clone(), got[0].token),
    ];
    // The stale completion of job 0 is refused, the fresh one applied: results are per id.
    assert_eq!(
        store.settle("w", &batch).await.unwrap(),
        [true, true, true, true]
    );
    let stats = store.stats().await.unwrap();
    assert_eq!(
        (stats.processed, stats.failed, stats.queues[0].pending),
        (1, 1, 1)
    );
    let retried = store
        .retry_failed(&RetrySelector::Ids(vec![jobs[2].id.clone()]))
        .await
        .unwrap();
    assert_eq!(retried, std::slice::from_ref(&jobs[2].id));
    let again = store
        .reserve("w", &["default".to_string()], 3)
        .await
        .unwrap();
    let bad = again
        .iter()
        .find(|j| j.id == jobs[2].id)
        .expect("retried job");
    assert_eq!(
        (bad.attempts, bad.retry_until, bad.envelope.as_str()),
        (1, None, "not json {")
    );

    // A retried job's deadline is recomputed from its envelope's window, from the retry on.
    let mut envelope = spool::Envelope::new("noop", "windowed", serde_json::json!({}));
    envelope.options.retry_for = Some(Duration::from_secs(60));
    store
        .push(&[NewJob::new(&envelope, Duration::ZERO).unwrap()])
        .await
        .unwrap();
    let queue = ["windowed".to_string()];
    let got = store.reserve("w", &queue, 1).await.unwrap();
    let fail = Settlement::fail(envelope.id.clone(), got[0].token, "x".into(), vec![]);
    assert_eq!(store.settle("w", &[fail]).await.unwrap(), [true]);
    tokio::time::sleep(Duration::from_millis(50)).await;
    store
        .retry_failed(&RetrySelector::All {
            queue: Some("windowed".into()),
        })
        .await
        .unwrap();
    let again = store.reserve("w", &queue, 1).await.unwrap();
    let window = again[0].retry_until.expect("a deadline") - again[0].reserved_at;
    assert!((55_000..=60_000).contains(&window), "{window}");
    assert!(
        again[0].retry_until > got[0].retry_until,
        "the deadline moved with the retry"
    );
}

// ---- Workflows on PostgreSQL: the hot path, concurrency and the upgrade from version 1 -----

fn worker_info(id: &str) -> spool::store::WorkerInfo {
    spool::store::WorkerInfo {
        id: id.into(),
        host: "h".into(),
        pid: 1,
        queues: vec!["default".into()],
    }
}

fn envelope_job(configure: impl FnOnce(&mut spool::Envelope)) -> spool::store::NewJob {
    let mut envelope = spool::Envelope::new("noop", "default", serde_json::json!({}));
    configure(&mut envelope);
    spool::store::NewJob::new(&envelope, Duration::ZERO).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_path_applies_side_effects() {
    use spool::{
        Unique,
        store::{NewBatch, PushOutcome, Settlement},
    };
    let Some(store) = open_fresh_schema().await else {
        return;
    };
    store.migrate().await.unwrap();
    let queue = ["default".to_string()];
    store
        .register_worker(&worker_info("w"), Duration::from_secs(30))
        .await
        .unwrap();

    // Plain jobs on the one-statement path: a unique lock is released by the completion, and a
    // claimed "until processing" job frees its key with the claim.
    let locked = envelope_job(|e| e.options.unique = Some(Unique::new("doc")));
    let processing =
        envelope_job(|e| e.options.unique = Some(Unique::new("mail").until_processing()));
    store.push(std::slice::from_ref(&locked)).await.unwrap();
    let got = store.reserve("w", &queue, 1).await.unwrap();
    store.push(&[processing]).await.unwrap();
    let (applied, claimed) = store
        .settle_and_reserve(
            "w",
            &[Settlement::complete(got[0].id.clone(), got[0].token)],
            &queue,
            5,
        )
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

    // A batch job among plain completions: nothing is done by the fast statement, and the
    // general path settles all of them with the batch's side effects.
    let batch_id = spool::new_id();
    let in_batch = envelope_job(|e| e.batch_id = Some(batch_id.clone()));
    let then = new_job("then", Duration::ZERO);
    let batch = NewBatch {
        id: batch_id.clone(),
        name: "b".into(),
        then: Some(then.clone()),
        ..NewBatch::default()
    };
    store.create_batch(&batch, &[in_batch]).await.unwrap();
    let mut held = claimed;
    held.extend(store.reserve("w", &queue, 10).await.unwrap());
    assert_eq!(held.len(), 4);
    let acks: Vec<Settlement> = held
        .iter()
        .map(|j| Settlement::complete(j.id.clone(), j.token))
        .collect();
    let (applied, _) = store
        .settle_and_reserve("w", &acks, &queue, 5)
        .await
        .unwrap();
    assert_eq!(applied, [true; 4]);
    let info = store.batch(&batch_id).await.unwrap().unwrap();
    assert_eq!((info.pending, info.progress), (0, 100));
    assert!(
        store.job(&then.id).await.unwrap().is_some(),
        "`then` was pushed"
    );
    assert_eq!(store.stats().await.unwrap().processed, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_slots_hold_under_concurrent_callers() {
    use spool::store::{LimitMode, SlotRequest};
    let Some(first) = open_fresh_schema().await else {
        return;
    };
    first.migrate().await.unwrap();
    // Several stores, so several pools: callers really run at once.
    let mut stores = vec![Arc::new(first)];
    for _ in 0..3 {
        let other = PostgresStore::open_in_schema(&url(), stores[0].schema())
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

#[tokio::test]
async fn version_1_schemas_are_upgraded_in_place() {
    let Some(store) = open_fresh_schema().await else {
        return;
    };
    // A schema as version 1 left it, with a job queued.
    let quoted = format!("\"{}\"", store.schema());
    let mut conn = PgConnection::connect(&url()).await.unwrap();
    let v1 = include_str!("../src/store/postgres/sql/schema.sql").replace("{schema}", &quoted);
    let setup = format!(
        "CREATE SCHEMA {quoted};
         CREATE TABLE {quoted}.spool_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL);
         {v1}
         INSERT INTO {quoted}.spool_migrations VALUES (1, 0);
         INSERT INTO {quoted}.jobs (id, queue, job, envelope, available_at, created_at)
         VALUES ('old', 'default', 'noop', '{{}}', 0, 0);"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(setup))
        .execute(&mut conn)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let version: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT MAX(version) FROM {quoted}.spool_migrations"
    )))
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(version, 2);
    store.migrate().await.unwrap();
    store
        .register_worker(&worker_info("w"), Duration::from_secs(30))
        .await
        .unwrap();
    let got = store
        .reserve("w", &["default".to_string()], 1)
        .await
        .unwrap();
    assert_eq!(got[0].id, "old");
    let done = spool::store::Settlement::Complete {
        id: "old".into(),
        token: got[0].token,
        follow_ups: vec![],
        result: Some("42".into()),
    };
    assert_eq!(store.settle("w", &[done]).await.unwrap(), [true]);
    let kept = store.job_result("old").await.unwrap().unwrap();
    assert_eq!(kept.result, Some(serde_json::json!(42)));
}
