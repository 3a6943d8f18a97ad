//! How much a day of 1-minute metrics costs in the store, per queue × job name.
//!
//! `cargo bench -p spool --bench metrics_storage` (add `--features postgres` and set
//! `SPOOL_TEST_POSTGRES_URL` to measure PostgreSQL too). Each minute of the day gets what a
//! busy job name produces: completed and failed counts, a few retries, and waits and run
//! times spread over 4 buckets each; written the way workers write (one call per minute).

use std::sync::Arc;

use spool::{
    Store,
    metrics::{Counter, MetricsRecord},
};

const MINUTES: i64 = 24 * 60;

fn minute(at: i64) -> MetricsRecord {
    let mut record = MetricsRecord::new(at, "mail", "SendInvoice");
    record.counts.add(Counter::Completed, 480);
    record.counts.add(Counter::Failed, 2);
    record.counts.add(Counter::Retried, 5);
    for (i, ms) in [2.0, 4.0, 30.0, 700.0].into_iter().enumerate() {
        for _ in 0..=i {
            record.wait.record_ms(ms);
            record.run.record_ms(ms * 3.0);
        }
    }
    record
}

async fn fill(store: &Arc<dyn Store>) {
    let start = spool::now_ms() - MINUTES * 60_000;
    for m in 0..MINUTES {
        store
            .record_metrics(&[minute(start + m * 60_000)])
            .await
            .expect("records");
    }
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.db");
    let url = format!("sqlite://{}", path.display());
    let store = spool::connect(&url).await.unwrap();
    // The file's pages in use once the write-ahead log is folded in; nothing else is written.
    let page_bytes = |conn: &rusqlite::Connection| -> i64 {
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
        let pages: i64 = conn
            .query_row("PRAGMA page_count", [], |row| row.get(0))
            .unwrap();
        let free: i64 = conn
            .query_row("PRAGMA freelist_count", [], |row| row.get(0))
            .unwrap();
        let size: i64 = conn
            .query_row("PRAGMA page_size", [], |row| row.get(0))
            .unwrap();
        (pages - free) * size
    };
    let before = page_bytes(&rusqlite::Connection::open(&path).unwrap());
    fill(&store).await;
    let conn = rusqlite::Connection::open(&path).unwrap();
    let after = page_bytes(&conn);
    let cells: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM spool_metrics WHERE res = 60",
            [],
            |r| r.get(0),
        )
        .unwrap();
    println!(
        "sqlite: one queue x job, one day of minutes: {} bytes ({} cells/minute; minute, hour and total rows together)",
        after - before,
        cells / MINUTES
    );

    #[cfg(feature = "postgres")]
    if let Ok(url) = std::env::var("SPOOL_TEST_POSTGRES_URL") {
        let schema = format!("bench_metrics_{}", std::process::id());
        let store = spool::connect(&format!("{url}?spool_schema={schema}"))
            .await
            .unwrap();
        fill(&store).await;
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        // The schema name is made here from the process id, not from input.
        let bytes: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT pg_total_relation_size('{schema}.metrics')"
        )))
        .fetch_one(&pool)
        .await
        .unwrap();
        println!("postgres: one queue x job, one day of minutes: {bytes} bytes (table and index)");
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(&pool)
            .await
            .unwrap();
    }
}
