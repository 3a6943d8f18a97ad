//! Migrations: idempotent, safe when concurrent, refusing a newer schema, and upgrading the
//! oldest layout in place.

use std::time::Duration;

use spool::{StoreError, store::Settlement};

use crate::{
    Fixture, Raw,
    helpers::{LEASE, new_job, push_default, reserve_default, worker},
};

/// Migrating again is harmless.
pub async fn migrate_is_idempotent(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    push_default(&store, 1).await;
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.stats().await.unwrap().queues[0].pending, 1);
}

/// Several handles migrating a new location at once all succeed, and end with one store.
pub async fn concurrent_first_migrations_are_safe(fixture: &dyn Fixture) {
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(fixture.open().await);
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

/// A fresh location is no store to a command that does not migrate, and checking it creates
/// nothing there; once migrated, it is.
pub async fn a_fresh_location_is_no_store_until_migrated(fixture: &dyn Fixture) {
    let store = fixture.open().await;
    for _ in 0..2 {
        match store.check_schema().await {
            Err(StoreError::NoStore(location)) => assert!(!location.is_empty()),
            other => panic!("expected NoStore on a fresh location, got {other:?}"),
        }
    }
    store.migrate().await.unwrap();
    store.check_schema().await.expect("a migrated store passes");
    fixture
        .open()
        .await
        .check_schema()
        .await
        .expect("another handle sees the migrated store");
}

/// A location a newer build migrated is refused, naming both versions.
pub async fn a_newer_schema_is_refused(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    fixture
        .raw(Raw::SchemaVersion(99))
        .await
        .expect("record a newer schema version");
    let supported = fixture.current_schema_version();
    match store.check_schema().await {
        Err(StoreError::SchemaTooNew { found: 99, .. }) => {}
        other => panic!("check_schema: expected SchemaTooNew, got {other:?}"),
    }
    match store.migrate().await {
        Err(StoreError::SchemaTooNew {
            found: 99,
            supported: s,
        }) if s == supported => {}
        other => {
            panic!("expected SchemaTooNew {{ found: 99, supported: {supported} }}, got {other:?}")
        }
    }
}

/// A location as schema version 1 left it, with a job queued, is upgraded in place; the job
/// runs and keeps its result, and migrating again is harmless.
pub async fn version_1_schemas_are_upgraded_in_place(fixture: &dyn Fixture) {
    if let Err(reason) = fixture.write_version_1("old").await {
        panic!(
            "no version 1 layout on {}: {reason} (skip this check by name if it cannot apply)",
            fixture.backend()
        );
    }
    let store = fixture.open().await;
    // A command that does not migrate is told to.
    match store.check_schema().await {
        Err(StoreError::SchemaTooOld {
            found: 1,
            supported,
        }) => {
            assert_eq!(supported, fixture.current_schema_version())
        }
        other => panic!("check_schema on version 1: expected SchemaTooOld, got {other:?}"),
    }
    store.migrate().await.unwrap();
    store.check_schema().await.expect("upgraded");
    assert_eq!(
        fixture.schema_version().await,
        fixture.current_schema_version()
    );
    store.migrate().await.unwrap();
    let old = store
        .job("old")
        .await
        .unwrap()
        .expect("the old job is kept");
    assert!(old.progress.is_none());
    let w = worker(&store, "w", LEASE).await;
    let got = reserve_default(&store, &w, 1).await;
    assert_eq!(got[0].id, "old");
    let done = Settlement::Complete {
        id: "old".into(),
        token: got[0].token,
        follow_ups: vec![],
        result: Some("42".into()),
    };
    assert_eq!(store.settle(&w, &[done]).await.unwrap(), [true]);
    let kept = store.job_result("old").await.unwrap().unwrap();
    assert_eq!(kept.result, Some(serde_json::json!(42)));
}
