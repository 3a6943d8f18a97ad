//! D-3 on the real PostgreSQL server: the worker's connections are terminated mid-run; it
//! reconnects with backoff and carries on, and nothing is lost.

mod common;

use std::time::{Duration, Instant};

use common::Env;
use sqlx::Connection;

fn base_url() -> String {
    std::env::var("SPOOL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

async fn admin() -> Option<sqlx::PgConnection> {
    match sqlx::PgConnection::connect(&base_url()).await {
        Ok(conn) => Some(conn),
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("PostgreSQL unreachable at {} under CI: {e}", base_url())
        }
        Err(e) => {
            eprintln!("SKIPPED: PostgreSQL unreachable at {}: {e}", base_url());
            None
        }
    }
}

fn processed(env: &Env) -> u64 {
    env.json(&["status", "--json"])["processed"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_survives_its_connections_being_terminated() {
    let Some(mut admin) = admin().await else {
        return;
    };
    let schema = format!("spool_test_drop_{:08x}", fastrand::u32(..));
    let mut env = Env::new();
    env.url = format!("{}?spool_schema={schema}", base_url());

    let lines: String = (0..400)
        .map(|_| "{\"job\":\"sleep\",\"payload\":{\"ms\":10}}\n")
        .collect();
    let out = env.with_stdin(&["dispatch", "--stdin"], &lines);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut worker = env.spawn(&[
        "work",
        "--concurrency",
        "10",
        "--until-done",
        "--sleep",
        "100ms",
    ]);

    let started = Instant::now();
    while processed(&env) < 50 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the worker made no progress"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every connection whose last statement touched this test's schema is the worker's.
    let killed: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE pid <> pg_backend_pid() AND query LIKE '%' || $1 || '%'",
    )
    .bind(&schema)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(
        !killed.is_empty(),
        "found no worker connection to terminate"
    );

    let status = tokio::task::spawn_blocking(move || worker.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "the worker exited with {status:?}");
    let state = env.json(&["status", "--json"]);
    assert_eq!(
        state["processed"].as_u64(),
        Some(400),
        "every job completed once"
    );
    assert_eq!(state["failed"].as_u64(), Some(0));
    assert_eq!(env.queued(), 0);

    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA \"{schema}\" CASCADE"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
}
