//! The PostgreSQL store through PgBouncer (Debian's `pgbouncer`, started by the tests as the
//! `postgres` user on a port of its own) in both pool modes, with an ordinary ini: the
//! conformance suite, a worker run, cross-process wake-ups (polled, or LISTENed on a
//! `listen_url` that bypasses the pooler), and a pooler refusal that stops with its cause.
//!
//! Without the `pgbouncer` binary the tests print `SKIPPED`; under `CI=true` that is a
//! failure.
#![cfg(feature = "postgres")]

mod support;

use std::{sync::Arc, time::Duration};

use spool::{Registry, Store, Worker, WorkerConfig, store::postgres::PostgresStore};
use spool_conformance::{Fixture, new_job};
use support::{PoolMode, bouncer_url, pgbouncer};

/// Every conformance check through PgBouncer in session mode, with a plain URL: the store
/// finds the pooler by itself.
mod session {
    spool_conformance::conformance_tests!(crate::support::pgbouncer(
        crate::support::PoolMode::Session
    ), skip {
        envelopes_that_are_not_utf8_fail_alone =>
            "the envelope column is TEXT in a UTF-8 database: PostgreSQL refuses bytes that are not UTF-8",
        times_that_are_not_numbers_fail_alone =>
            "available_at is BIGINT: PostgreSQL refuses anything but a number",
        ready_ids_without_their_job_leave_a_record =>
            "a row is its job: there is no ready list to hold an id without its data",
    });
}

/// Every conformance check through PgBouncer in transaction mode (`?pgbouncer=true`).
mod transaction {
    spool_conformance::conformance_tests!(crate::support::pgbouncer(
        crate::support::PoolMode::Transaction
    ), skip {
        envelopes_that_are_not_utf8_fail_alone =>
            "the envelope column is TEXT in a UTF-8 database: PostgreSQL refuses bytes that are not UTF-8",
        times_that_are_not_numbers_fail_alone =>
            "available_at is BIGINT: PostgreSQL refuses anything but a number",
        ready_ids_without_their_job_leave_a_record =>
            "a row is its job: there is no ready list to hold an id without its data",
    });
}

/// Pushes `n` noop jobs and runs a worker until they are done: every one completes.
async fn worker_runs_jobs(mode: PoolMode) {
    let Some(fresh) = pgbouncer(mode).await else {
        return;
    };
    let store: Arc<dyn Store> = fresh.connect().await;
    let jobs: Vec<_> = (0..200)
        .map(|_| new_job("default", Duration::ZERO))
        .collect();
    store.push(&jobs).await.unwrap();
    let config = WorkerConfig {
        concurrency: 8,
        sleep: Duration::from_millis(50),
        until_done: true,
        ..WorkerConfig::default()
    };
    let worker = Worker::new(store.clone(), Registry::with_builtins(), config);
    let exit = tokio::time::timeout(Duration::from_secs(60), worker.run())
        .await
        .expect("the worker finished in time (it must not loop on pooler errors)")
        .expect("the worker ran");
    assert_eq!((exit.completed, exit.failed), (200, 0), "{exit:?}");
    fresh.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_runs_jobs_through_pgbouncer_in_session_mode() {
    worker_runs_jobs(PoolMode::Session).await;
}

/// The set-up of the report: with `extra_float_digits` ignored, the hot path's `options`
/// startup parameter was refused on every claim and the worker retried forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_runs_jobs_through_a_session_pooler_ignoring_extra_float_digits() {
    worker_runs_jobs(PoolMode::SessionIgnoringFloatDigits).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_runs_jobs_through_pgbouncer_in_transaction_mode() {
    worker_runs_jobs(PoolMode::Transaction).await;
}

/// A push through one store handle wakes the idle workers of another (as in another process):
/// with `extra` added to the URL.
async fn pushes_wake_another_store(fresh: &support::Fresh, extra: Option<&str>) {
    let url = match extra {
        Some(param) => format!("{}&{param}", fresh.url),
        None => fresh.url.clone(),
    };
    let waiter = spool::connect(&url).await.expect("connect");
    let pusher = spool::connect(&url).await.expect("connect");
    let mut wakeups = waiter.wakeups();
    // The first wait returns at once (the listener or poller starts by waking everyone).
    wakeups.wait(Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    wakeups.wait(Duration::from_millis(1)).await;
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        pusher
            .push(&[new_job("default", Duration::ZERO)])
            .await
            .unwrap();
    });
    let started = std::time::Instant::now();
    assert!(
        wakeups.wait(Duration::from_secs(10)).await,
        "no wake-up after another store's push"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wakeups_are_polled_through_a_transaction_pooler() {
    let Some(fresh) = pgbouncer(PoolMode::Transaction).await else {
        return;
    };
    fresh.store().await;
    pushes_wake_another_store(&fresh, None).await;
    fresh.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wakeups_listen_on_listen_url_past_the_pooler() {
    let Some(fresh) = pgbouncer(PoolMode::Transaction).await else {
        return;
    };
    fresh.store().await;
    let direct = support::postgres_url();
    let encoded: String = direct
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    pushes_wake_another_store(&fresh, Some(&format!("listen_url={encoded}"))).await;
    fresh.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooler_refusal_stops_with_its_cause() {
    let Some(url) = bouncer_url(PoolMode::Session).await else {
        return;
    };
    // A startup parameter PgBouncer does not know (only `ignore_startup_parameters` would let
    // it through): a misconfiguration, never "server unavailable".
    let refused = format!("{url}?options=-c%20work_mem%3D8MB");
    let err = PostgresStore::open(&refused).await.unwrap_err();
    assert!(!err.is_unavailable(), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("unsupported startup parameter"),
        "{message}"
    );
    assert!(message.contains("ignore_startup_parameters"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_pooler_without_the_flag_stops_with_the_fix() {
    // The pooler accepts (ignores) `options`, so the store cannot tell it is there and
    // prepares named statements: the second store's `sqlx_s_1` meets the first one's on the
    // pooler's only server connection. That must stop with the fix, not retry forever.
    let Some(fresh) = pgbouncer(PoolMode::TransactionHidden).await else {
        return;
    };
    let stores = [fresh.open().await, fresh.open().await];
    let mut refused = None;
    'calls: for _ in 0..5 {
        for store in &stores {
            if let Err(e) = store.migrate().await {
                refused = Some(e);
                break 'calls;
            }
        }
    }
    let err = refused.expect("named statements collide on the pooler's one server connection");
    assert!(!err.is_unavailable(), "{err}");
    assert!(err.to_string().contains("pgbouncer=true"), "{err}");
    drop(stores);
    fresh.cleanup().await;
}
