//! The job rules (queue names, id lengths, the payload limit) at every entry point of the Rust
//! API: dispatch, chains, batches, `NewJob::new` and `push_in_transaction`; and jobs stored
//! under other names before the rules stay listable and clearable.
#![cfg(feature = "sqlite")]

mod support;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use spool::{
    DispatchError, Envelope, Job, JobContext, JobResult, Spool,
    limits::{InvalidJob, QUEUE_NAME_RULE},
    store::{JobFilter, NewJob, sqlite::SqliteStore},
};

#[derive(Debug, Serialize, Deserialize)]
struct Good {}

impl Job for Good {
    const NAME: &'static str = "good";
    async fn handle(self, _: JobContext) -> JobResult {
        Ok(())
    }
}

/// A job type whose own queue breaks the rule.
#[derive(Debug, Serialize, Deserialize)]
struct OnBadQueue {}

impl Job for OnBadQueue {
    const NAME: &'static str = "on_bad_queue";
    fn queue(&self) -> &str {
        "reports, weekly"
    }
    async fn handle(self, _: JobContext) -> JobResult {
        Ok(())
    }
}

fn breaks_queue_rule(err: DispatchError) {
    assert!(
        matches!(&err, DispatchError::Invalid(InvalidJob::Queue(_))),
        "{err:?}"
    );
    assert!(err.to_string().contains(QUEUE_NAME_RULE), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dispatch_path_refuses_bad_names_and_stores_nothing() {
    let (store, _dir) = support::sqlite_store().await;
    let spool = Spool::new(store.clone());
    for queue in ["a,b", " high ", "", "line\nbreak", &"q".repeat(129)] {
        breaks_queue_rule(spool.dispatch(Good {}).on_queue(queue).await.unwrap_err());
    }
    let err = spool
        .dispatch(Good {})
        .id("x".repeat(300))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("a job id must be 1-255"), "{err}");
    breaks_queue_rule(spool.dispatch(OnBadQueue {}).await.unwrap_err());
    // A chain's later link and its catch job are checked like the head.
    breaks_queue_rule(
        spool
            .chain()
            .then(Good {})
            .unwrap()
            .then(OnBadQueue {})
            .unwrap()
            .dispatch()
            .await
            .unwrap_err(),
    );
    breaks_queue_rule(
        spool
            .chain()
            .then(Good {})
            .unwrap()
            .catch(OnBadQueue {})
            .unwrap()
            .dispatch()
            .await
            .unwrap_err(),
    );
    // So are a batch's callbacks and a chain's batch step's jobs.
    breaks_queue_rule(
        spool
            .batch("b")
            .job(Good {})
            .unwrap()
            .then(OnBadQueue {})
            .unwrap()
            .dispatch()
            .await
            .unwrap_err(),
    );
    let step = spool.batch("step").job(OnBadQueue {}).unwrap();
    breaks_queue_rule(
        spool
            .chain()
            .then(Good {})
            .unwrap()
            .then_batch(step)
            .unwrap()
            .dispatch()
            .await
            .unwrap_err(),
    );
    let stats = store.stats().await.unwrap();
    assert!(stats.queues.is_empty(), "nothing was stored: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_job_and_push_in_transaction_enforce_the_rules() {
    let (_store, dir) = support::sqlite_store().await;
    let big = serde_json::json!({"blob": "x".repeat(300 * 1024)});
    let err = NewJob::new(
        &Envelope::new("noop", "default", big.clone()),
        Duration::ZERO,
    )
    .unwrap_err();
    assert!(matches!(err, InvalidJob::PayloadTooLarge { .. }), "{err}");
    let err = NewJob::new(
        &Envelope::new("", "default", serde_json::json!({})),
        Duration::ZERO,
    )
    .unwrap_err();
    assert!(err.to_string().contains("a job name"), "{err}");
    // A raised limit is the dispatcher's choice.
    let raised = NewJob::with_max_payload(
        &Envelope::new("noop", "default", big),
        Duration::ZERO,
        1024 * 1024,
    )
    .unwrap();

    let mut conn = rusqlite::Connection::open(dir.join(support::SQLITE_FILE)).unwrap();
    let tx = conn.transaction().unwrap();
    let mut too_big = raised.clone();
    too_big.max_payload = 1024;
    let err = SqliteStore::push_in_transaction(&tx, &[too_big]).unwrap_err();
    assert!(err.to_string().contains("payload limit"), "{err}");
    let mut bad_queue = raised.clone();
    bad_queue.queue = "a b".into();
    let err = SqliteStore::push_in_transaction(&tx, &[bad_queue]).unwrap_err();
    assert!(err.to_string().contains(QUEUE_NAME_RULE), "{err}");
    SqliteStore::push_in_transaction(&tx, &[raised]).unwrap();
    tx.commit().unwrap();
}

/// Jobs stored before the rule (here written straight into the table) stay listable and
/// clearable: admin reads and writes do not check names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_stored_under_other_names_stay_listable_and_clearable() {
    let (store, dir) = support::sqlite_store().await;
    let conn = rusqlite::Connection::open(dir.join(support::SQLITE_FILE)).unwrap();
    let envelope = Envelope::new("noop", "old queue,", serde_json::json!({}));
    conn.execute(
        "INSERT INTO spool_jobs (id, queue, job, envelope, available_at, created_at) \
         VALUES (?1, 'old queue,', 'noop', ?2, 0, 0)",
        (&envelope.id, envelope.encode().unwrap()),
    )
    .unwrap();
    let listed = store
        .jobs(&JobFilter {
            queue: Some("old queue,".into()),
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert!(store.job(&envelope.id).await.unwrap().is_some());
    assert_eq!(store.clear("old queue,").await.unwrap(), 1);
}
