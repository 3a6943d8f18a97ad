//! The store conformance suite on the embedded SQLite store, each test on a fresh file.
#![cfg(feature = "sqlite")]

mod support;

spool_conformance::conformance_tests!(support::sqlite(), skip {
    ready_ids_without_their_job_leave_a_record =>
        "a row is its job: there is no ready list to hold an id without its data",
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

/// Opening without creating leaves no file, `-wal` or `-shm` where none was, in either of
/// the URL forms; a locked database is reported as busy, not as a server to check.
#[tokio::test]
async fn opening_an_existing_store_creates_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.db");
    for url in [
        format!("sqlite://{}", path.display()),
        format!("sqlite:{}", path.display()),
    ] {
        match spool::store::open_existing(&url).await {
            Err(spool::StoreError::NoStore(shown)) => assert_eq!(shown, url),
            other => panic!("expected NoStore, got {:?}", other.err()),
        }
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }
    spool::connect(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    spool::store::open_existing(&format!("sqlite://{}", path.display()))
        .await
        .expect("a migrated file opens");
}

#[test]
fn a_locked_database_is_busy_not_unreachable() {
    use spool::store::sqlite::rusqlite::{Error, ffi};
    let locked = Error::SqliteFailure(
        ffi::Error::new(ffi::SQLITE_BUSY),
        Some("database is locked".into()),
    );
    let e = spool::StoreError::from(locked);
    assert!(matches!(e, spool::StoreError::Busy(_)), "{e:?}");
    assert!(e.is_unavailable(), "busy is retried");
    let shown = e.to_string();
    assert!(
        shown.contains("database is locked") && shown.contains("busy"),
        "{shown}"
    );
    assert!(!shown.contains("server is running"), "{shown}");
}
