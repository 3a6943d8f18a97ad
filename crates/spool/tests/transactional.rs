//! Transactional enqueue: a job pushed inside the app's own transaction exists if and only if
//! that transaction commits (SQLite and PostgreSQL), and the after-commit buffer pushes only
//! on commit (every store).
#![cfg(feature = "sqlite")]

mod support;

#[cfg(any(feature = "postgres", feature = "mysql"))]
use spool::store::QueueStore;
use std::{sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use spool::{
    DispatchStatus, Job, JobContext, JobResult, Spool, Store, Unique,
    store::{PushOutcome, sqlite::SqliteStore},
};

#[derive(Serialize, Deserialize)]
struct Receipt {
    order: u64,
}

impl Job for Receipt {
    const NAME: &'static str = "receipt";
    async fn handle(self, _ctx: JobContext) -> JobResult {
        Ok(())
    }
}

async fn queued(store: &Arc<dyn Store>) -> u64 {
    spool_conformance::pending_jobs(store.as_ref(), None).await
}

#[tokio::test]
async fn sqlite_jobs_live_and_die_with_the_apps_transaction() {
    let (store, dir) = support::sqlite_store().await;
    let path = dir.join(support::SQLITE_FILE);
    let spool = Spool::new(store.clone());
    let mut app = rusqlite::Connection::open(&path).unwrap();
    app.execute(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, state TEXT)",
        [],
    )
    .unwrap();

    // Rolled back: neither the order nor the job (nor its unique lock) exists.
    let mut job = spool
        .new_job(&Receipt { order: 1 }, Duration::ZERO)
        .unwrap();
    job.unique = Some(Unique::new("order:1"));
    let tx = app.transaction().unwrap();
    tx.execute("INSERT INTO orders VALUES (1, 'paid')", [])
        .unwrap();
    assert_eq!(
        SqliteStore::push_in_transaction(&tx, &[job.clone()]).unwrap(),
        [PushOutcome::Queued]
    );
    tx.rollback().unwrap();
    assert!(store.job(&job.id).await.unwrap().is_none());
    assert_eq!(queued(&store).await, 0);

    // Committed: both exist, and the lock is the committed job's.
    let tx = app.transaction().unwrap();
    tx.execute("INSERT INTO orders VALUES (1, 'paid')", [])
        .unwrap();
    SqliteStore::push_in_transaction(&tx, std::slice::from_ref(&job)).unwrap();
    tx.commit().unwrap();
    assert!(store.job(&job.id).await.unwrap().is_some());
    let dup = spool
        .dispatch(Receipt { order: 1 })
        .unique(Unique::new("order:1"))
        .await
        .unwrap();
    assert_eq!(dup.status, DispatchStatus::AlreadyQueued);
}

#[tokio::test]
async fn after_commit_pushes_only_on_commit() {
    let (store, _dir) = support::sqlite_store().await;
    let spool = Spool::new(store.clone());
    let mut held = spool.after_commit();
    held.dispatch(Receipt { order: 1 }).unwrap();
    held.dispatch_later(Receipt { order: 2 }, Duration::from_secs(60))
        .unwrap();
    assert_eq!(held.len(), 2);
    assert_eq!(queued(&store).await, 0, "nothing before the commit");
    let outcomes = held.commit().await.unwrap();
    assert_eq!(outcomes.len(), 2);
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.queues[0].pending, stats.queues[0].delayed), (1, 1));

    let mut dropped = spool.after_commit();
    dropped.dispatch(Receipt { order: 3 }).unwrap();
    dropped.rollback();
    assert_eq!(queued(&store).await, 1, "a rollback pushes nothing");
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_jobs_live_and_die_with_the_apps_transaction() {
    use spool::store::postgres::PostgresStore;
    use sqlx::Connection;

    let Some(fresh) = support::postgres().await else {
        return;
    };
    let base = support::postgres_url();
    let pg = PostgresStore::open(&fresh.url).await.unwrap();
    pg.migrate().await.unwrap();
    let pg = Arc::new(pg);
    let store: Arc<dyn Store> = pg.clone();
    let spool = Spool::new(store.clone());
    let mut app = sqlx::PgConnection::connect(&base).await.unwrap();

    let job = spool
        .new_job(&Receipt { order: 7 }, Duration::ZERO)
        .unwrap();
    let mut tx = app.begin().await.unwrap();
    pg.push_in_transaction(&mut tx, std::slice::from_ref(&job))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert!(
        store.job(&job.id).await.unwrap().is_none(),
        "rolled back with the transaction"
    );

    let mut wakeups = store.wakeups();
    let mut tx = app.begin().await.unwrap();
    pg.push_in_transaction(&mut tx, std::slice::from_ref(&job))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(store.job(&job.id).await.unwrap().is_some());
    assert!(
        wakeups.wait(Duration::from_secs(5)).await,
        "the commit woke idle workers"
    );
    fresh.cleanup().await;
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn mysql_jobs_live_and_die_with_the_apps_transaction() {
    use spool::store::mysql::MysqlStore;
    use sqlx::Connection;

    let Some(fresh) = support::mysql().await else {
        return;
    };
    let my = Arc::new(MysqlStore::open(&fresh.url).await.unwrap());
    my.migrate().await.unwrap();
    let store: Arc<dyn Store> = my.clone();
    let spool = Spool::new(store.clone());
    let mut app = sqlx::MySqlConnection::connect(&fresh.url).await.unwrap();

    let job = spool
        .new_job(&Receipt { order: 9 }, Duration::ZERO)
        .unwrap();
    let mut tx = app.begin().await.unwrap();
    my.push_in_transaction(&mut tx, std::slice::from_ref(&job))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert!(
        store.job(&job.id).await.unwrap().is_none(),
        "rolled back with the transaction"
    );

    let mut tx = app.begin().await.unwrap();
    my.push_in_transaction(&mut tx, std::slice::from_ref(&job))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(store.job(&job.id).await.unwrap().is_some());
    fresh.cleanup().await;
}
