//! The store conformance suite on the embedded SQLite store, each test on a fresh file.
#![cfg(feature = "sqlite")]

mod support;

spool_conformance::conformance_tests!(support::sqlite(), skip {
    envelopes_that_are_not_json_are_kept_as_is =>
        "retrying a failed job reads its envelope as JSON (`->>` for the retry window), so a \
         job whose envelope is not JSON cannot be retried: 'malformed JSON'",
});

#[tokio::test]
async fn raw_writes_reach_the_store() {
    let Some(fresh) = support::sqlite().await else {
        return;
    };
    support::raw_job_row_is_seen(
        &fresh,
        "INSERT INTO spool_jobs (id, queue, job, envelope, available_at, created_at)
         VALUES (?1, 'default', 'noop', ?2, 0, 0)",
    )
    .await;
    fresh.cleanup().await;
}
