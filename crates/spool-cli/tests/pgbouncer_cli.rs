//! `spool` through PgBouncer (started by the tests, see the library's test support): a worker
//! runs every job in both pool modes, and a pooler that refuses the connection makes the
//! command stop with the cause instead of retrying as if the server were down.
//!
//! Without the `pgbouncer` binary the tests print `SKIPPED`; under `CI=true` that is a
//! failure.

mod common;

#[path = "../../spool/tests/support/bouncer.rs"]
#[allow(dead_code)]
mod bouncer;

use std::time::{Duration, Instant};

use bouncer::{PoolMode, bouncer_url};
use common::Env;

/// Dispatches 50 jobs and works them off through PgBouncer in `mode`.
async fn work_through(mode: PoolMode, flag: &str) {
    let Some(url) = bouncer_url(mode).await else {
        return;
    };
    let schema = format!("spool_test_pgb_{:08x}", fastrand::u32(..));
    let mut env = Env::new();
    env.url = format!("{url}?spool_schema={schema}{flag}");
    let lines: String = (0..50).map(|_| "{\"job\":\"noop\"}\n").collect();
    let out = env.with_stdin(&["dispatch", "--stdin"], &lines);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = env.run(&["work", "--concurrency", "4", "--until-done"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        env.json(&["status", "--json"])["processed"],
        50,
        "every job ran: {stderr}"
    );
    drop_schema(&schema).await;
}

async fn drop_schema(schema: &str) {
    let server = std::env::var("SPOOL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    if let Err(e) = spool::store::postgres::PostgresStore::drop_schema(&server, schema).await {
        eprintln!("cannot drop {schema}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_runs_jobs_through_pgbouncer_in_session_mode() {
    work_through(PoolMode::Session, "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_runs_jobs_through_pgbouncer_in_transaction_mode() {
    work_through(PoolMode::Transaction, "&pgbouncer=true").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_stops_at_once_when_the_pooler_refuses_the_connection() {
    let Some(url) = bouncer_url(PoolMode::Session).await else {
        return;
    };
    let mut env = Env::new();
    env.url = format!("{url}?options=-c%20work_mem%3D8MB");
    // Before the fix the worker retried forever: give it 20 s, then kill it and fail.
    let mut worker = env.spawn(&["work", "--until-done"]);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = worker.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            worker.kill().unwrap();
            worker.wait().unwrap();
            panic!("the worker kept retrying a connection the pooler refuses");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut worker.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("unsupported startup parameter")
            && stderr.contains("ignore_startup_parameters"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("check that the server is running"),
        "{stderr}"
    );
}
