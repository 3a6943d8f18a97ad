//! Checks of the key-value part of the contract ([`KeyValueStore`](spool::store::KeyValueStore)):
//! compare-and-set lets exactly one of racing writers win, across handles; values expire;
//! prefixes list and delete exactly their own names.

use std::{sync::Arc, time::Duration};

use spool::store::{KvExpect, Store};

use crate::Fixture;

/// Absent, version and unconditional writes each succeed exactly when they should.
pub async fn kv_compare_and_set_holds_its_expectation(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    assert_eq!(store.kv_get("llm:openai").await.unwrap(), None);
    assert_eq!(
        store
            .kv_put("llm:openai", "a", KvExpect::Version(1), None)
            .await
            .unwrap(),
        None,
        "a version write to nothing fails"
    );
    let v1 = store
        .kv_put("llm:openai", "a", KvExpect::Absent, None)
        .await
        .unwrap();
    assert_eq!(v1, Some(1));
    assert_eq!(
        store
            .kv_put("llm:openai", "b", KvExpect::Absent, None)
            .await
            .unwrap(),
        None,
        "an absent write to a live value fails"
    );
    let read = store.kv_get("llm:openai").await.unwrap().unwrap();
    assert_eq!(
        (read.value.as_str(), read.version, read.expires_at_ms),
        ("a", 1, None)
    );
    assert_eq!(
        store
            .kv_put("llm:openai", "c", KvExpect::Version(1), None)
            .await
            .unwrap(),
        Some(2)
    );
    assert_eq!(
        store
            .kv_put("llm:openai", "d", KvExpect::Version(1), None)
            .await
            .unwrap(),
        None,
        "a stale version loses"
    );
    assert_eq!(
        store
            .kv_put("llm:openai", "e", KvExpect::Any, None)
            .await
            .unwrap(),
        Some(3)
    );
    assert_eq!(
        store.kv_get("llm:openai").await.unwrap().unwrap().value,
        "e"
    );
    for bad in ["".to_string(), "k".repeat(spool::store::MAX_KV_KEY + 1)] {
        let refused = store.kv_put(&bad, "x", KvExpect::Any, None).await;
        assert!(
            matches!(refused, Err(spool::StoreError::Invalid(_))),
            "{refused:?}"
        );
    }
}

/// Read-modify-write loops on two handles of one store never lose an increment.
pub async fn kv_racing_writers_never_lose_an_update(fixture: &dyn Fixture) {
    let stores = [fixture.store().await, fixture.open().await];
    const TASKS_PER_HANDLE: usize = 4;
    const INCREMENTS: usize = 10;
    let mut tasks = Vec::new();
    for store in &stores {
        for _ in 0..TASKS_PER_HANDLE {
            let store: Arc<dyn Store> = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut conflicts = 0;
                for _ in 0..INCREMENTS {
                    loop {
                        let current = store.kv_get("counter").await.unwrap();
                        let (n, expect) = match &current {
                            Some(e) => (
                                e.value.parse::<u64>().unwrap(),
                                KvExpect::Version(e.version),
                            ),
                            None => (0, KvExpect::Absent),
                        };
                        let next = (n + 1).to_string();
                        if store
                            .kv_put("counter", &next, expect, None)
                            .await
                            .unwrap()
                            .is_some()
                        {
                            break;
                        }
                        conflicts += 1;
                    }
                }
                conflicts
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let total = stores.len() * TASKS_PER_HANDLE * INCREMENTS;
    let stored = stores[0].kv_get("counter").await.unwrap().unwrap();
    assert_eq!(stored.value, total.to_string());
    assert_eq!(stored.version, total as i64);
}

/// Values expire after their time to live; prefixes list in name order, up to a limit, and
/// delete only their own names; pruning drops what expired.
pub async fn kv_values_expire_and_prefixes_select(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let short = Some(Duration::from_millis(300));
    for (key, ttl) in [
        ("call:job-1:b", None),
        ("call:job-1:a", None),
        ("call:job-1:é", None),
        ("call:job-1:gone", short),
        ("call:job-10:a", None),
        ("call:job-1;", None),
        ("cache:x", None),
    ] {
        store.kv_put(key, key, KvExpect::Any, ttl).await.unwrap();
    }
    let expiring = store.kv_get("call:job-1:gone").await.unwrap().unwrap();
    let expires_at = expiring
        .expires_at_ms
        .expect("a value with a ttl has an expiry");
    let now = spool::now_ms();
    assert!(
        (now..=now + 1_000).contains(&expires_at),
        "expires at {expires_at}, now {now}"
    );
    let names = |entries: Vec<(String, spool::store::KvEntry)>| {
        entries.into_iter().map(|(k, _)| k).collect::<Vec<_>>()
    };
    assert_eq!(
        names(store.kv_list("call:job-1:", 10).await.unwrap()),
        [
            "call:job-1:a",
            "call:job-1:b",
            "call:job-1:gone",
            "call:job-1:é"
        ]
    );
    assert_eq!(
        names(store.kv_list("call:job-1:", 2).await.unwrap()),
        ["call:job-1:a", "call:job-1:b"]
    );

    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(store.kv_get("call:job-1:gone").await.unwrap(), None);
    assert!(
        store.kv_prune().await.unwrap() >= 1,
        "the expired value is pruned"
    );
    assert_eq!(
        names(store.kv_list("call:", 10).await.unwrap()),
        [
            "call:job-10:a",
            "call:job-1:a",
            "call:job-1:b",
            "call:job-1:é",
            "call:job-1;"
        ]
    );
    assert_eq!(
        store
            .kv_put("call:job-1:gone", "again", KvExpect::Absent, None)
            .await
            .unwrap()
            .map(|_| ()),
        Some(()),
        "an expired value counts as absent"
    );

    assert_eq!(store.kv_delete("call:job-1:").await.unwrap(), 4);
    assert_eq!(
        names(store.kv_list("", 10).await.unwrap()),
        ["cache:x", "call:job-10:a", "call:job-1;"]
    );
    assert_eq!(store.kv_delete("cache:x").await.unwrap(), 1);
    assert_eq!(store.kv_get("cache:x").await.unwrap(), None);
}
