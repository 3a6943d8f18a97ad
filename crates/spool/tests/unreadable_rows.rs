//! A worker on rows another program wrote into the embedded SQLite store: each row it cannot
//! read ends in the failed store with the reason, and the good jobs around it run.
#![cfg(feature = "sqlite")]

mod support;

use std::time::Duration;

use spool::{Registry, Worker, WorkerConfig};
use spool_conformance::{Fixture, Raw, Value, new_job};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_rows_fail_with_the_reason_and_block_nothing() {
    let fresh = support::sqlite().await.expect("a SQLite location");
    let store = fresh.store().await;
    let jobs: Vec<_> = (0..6).map(|_| new_job("default", Duration::ZERO)).collect();
    for job in &jobs {
        store.push(std::slice::from_ref(job)).await.unwrap();
    }
    let update = |set: &str, value: Value, id: &str| Raw::Sql {
        statement: format!("UPDATE spool_jobs SET {set} WHERE id = ?2"),
        binds: vec![value, id.into()],
    };
    let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(300 * 1024));
    let writes = [
        update(
            "envelope = ?1",
            Value::Bytes(vec![0xff, 0xfe, b'{']),
            &jobs[0].id,
        ),
        update("available_at = ?1", "later".into(), &jobs[1].id),
        update("envelope = ?1", big.as_str().into(), &jobs[2].id),
        update("job = ?1", "shell".into(), &jobs[3].id),
        update("recoveries = ?1", "many".into(), &jobs[5].id),
    ];
    for write in writes {
        fresh.raw(write).await.expect("raw write");
    }

    let listed = store
        .jobs(&Default::default())
        .await
        .expect("spool jobs lists them");
    assert_eq!(listed.len(), 6);
    let shown = listed.iter().find(|j| j.id == jobs[3].id).unwrap();
    assert_eq!(shown.job, "noop", "the name that runs is the name shown");

    let config = WorkerConfig {
        until_done: true,
        sleep: Duration::from_millis(50),
        ..WorkerConfig::default()
    };
    let worker = Worker::new(store.clone(), Registry::with_builtins(), config);
    let exit = tokio::time::timeout(Duration::from_secs(30), worker.run())
        .await
        .expect("--until-done ends")
        .expect("the worker ran");
    assert_eq!((exit.completed, exit.failed), (2, 4));
    let error = |n: usize| {
        let store = store.clone();
        let id = jobs[n].id.clone();
        async move {
            store
                .failed_job(&id)
                .await
                .unwrap()
                .expect("a record")
                .error
        }
    };
    let bytes = error(0).await;
    assert!(
        bytes.contains("a BLOB of 3 bytes that are not UTF-8"),
        "{bytes}"
    );
    let time = error(1).await;
    assert!(
        time.contains("`available_at` is stored as the TEXT 'later'"),
        "{time}"
    );
    let counter = error(5).await;
    assert!(
        counter.contains("`recoveries` is stored as the TEXT 'many'"),
        "{counter}"
    );
    let size = error(2).await;
    assert!(size.contains("over the 262144 byte limit"), "{size}");
    let failed = store
        .failed_jobs(&Default::default())
        .await
        .expect("failed lists them");
    assert_eq!(failed.0.len(), 4);
    fresh.cleanup().await;
}

/// Ids and queue names another program stored as BLOBs (what Python's `sqlite3` writes for
/// `bytes`): listings and status show them flagged, a claimed one fails with the reason under
/// a TEXT id, and none of them fails a reserve or stops `--until-done`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_ids_and_queue_names_are_flagged_and_block_nothing() {
    let fresh = support::sqlite().await.expect("a SQLite location");
    let store = fresh.store().await;
    let jobs: Vec<_> = (0..5).map(|_| new_job("default", Duration::ZERO)).collect();
    store.push(&jobs).await.unwrap();
    let update = |set: &str, value: Value, id: &str| Raw::Sql {
        statement: format!("UPDATE spool_jobs SET {set} WHERE id = ?2"),
        binds: vec![value, id.into()],
    };
    let blob_id = jobs[0].id.clone();
    let writes = [
        // A BLOB of UTF-8 text, and one that is not UTF-8.
        update(
            "id = ?1",
            Value::Bytes(blob_id.clone().into_bytes()),
            &blob_id,
        ),
        update("id = ?1", Value::Bytes(vec![0xff, 0xfe]), &jobs[1].id),
        // A queue name as a BLOB never equals the TEXT a worker asks for.
        update("queue = ?1", Value::Bytes(b"default".to_vec()), &jobs[2].id),
    ];
    for write in writes {
        fresh.raw(write).await.expect("raw write");
    }

    let listed = store
        .jobs(&Default::default())
        .await
        .expect("jobs lists them");
    assert_eq!(listed.len(), 5);
    let flagged = listed.iter().filter(|j| j.unreadable.is_some()).count();
    assert_eq!(flagged, 3, "{listed:#?}");
    let stats = store.stats().await.expect("status reads them");
    assert!(
        stats
            .queues
            .iter()
            .any(|q| q.name.contains("no worker serves it")),
        "{:?}",
        stats.queues
    );

    let config = WorkerConfig {
        until_done: true,
        sleep: Duration::from_millis(50),
        ..WorkerConfig::default()
    };
    let worker = Worker::new(store.clone(), Registry::with_builtins(), config);
    let exit = tokio::time::timeout(Duration::from_secs(30), worker.run())
        .await
        .expect("--until-done ends")
        .expect("the worker ran");
    assert_eq!((exit.completed, exit.failed), (2, 2));
    let record = store
        .failed_job(&blob_id)
        .await
        .unwrap()
        .expect("failed under the id it reads as");
    assert!(
        record.error.contains("`id` is stored as a BLOB"),
        "{}",
        record.error
    );
    let (failed, _) = store.failed_jobs(&Default::default()).await.unwrap();
    assert_eq!(failed.len(), 2);
    fresh.cleanup().await;
}
