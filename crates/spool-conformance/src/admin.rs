//! Checks of the operator's part of the contract ([`AdminStore`](spool::store::AdminStore)):
//! status, listings, job commands, the failed store and restart signals.

use std::time::Duration;

use spool::{
    Envelope,
    store::{FailedFilter, JobFilter, JobState, NewJob, RetrySelector, Settlement},
};

use crate::{
    Fixture,
    helpers::{LEASE, new_job, reserve_default, reserve_from, worker},
};

/// Failing moves the job to the failed store with its error and causes; the failed store can
/// be listed, shown, forgotten, flushed and pruned.
pub async fn failed_store_keeps_records(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let a = new_job("mail", Duration::ZERO);
    let b = new_job("default", Duration::ZERO);
    store.push(&[a.clone(), b.clone()]).await.unwrap();
    let w = worker(&store, "w", LEASE).await;
    let got = reserve_from(&store, &w, &["mail", "default"], 2).await;
    let fails: Vec<Settlement> = got
        .iter()
        .map(|j| {
            Settlement::fail(
                j.id.clone(),
                j.token,
                format!("boom {}", j.queue),
                vec!["inner".into(), "root".into()],
            )
        })
        .collect();
    assert_eq!(store.settle(&w, &fails).await.unwrap(), [true, true]);
    assert!(store.job(&a.id).await.unwrap().is_none());
    let (all, total) = store.failed_jobs(&FailedFilter::default()).await.unwrap();
    assert_eq!((all.len(), total), (2, 2));
    let (mail, total) = store
        .failed_jobs(&FailedFilter {
            queue: Some("mail".into()),
            limit: None,
        })
        .await
        .unwrap();
    assert_eq!((mail.len(), total), (1, 1));
    // A page without its total holds the same records, in the same order.
    let ids = |records: &[spool::store::FailedJob]| -> Vec<String> {
        records.iter().map(|r| r.id.clone()).collect()
    };
    let page = store.failed_page(&FailedFilter::default()).await.unwrap();
    assert_eq!(ids(&page), ids(&all));
    let one = FailedFilter {
        queue: Some("mail".into()),
        limit: Some(1),
    };
    assert_eq!(ids(&store.failed_page(&one).await.unwrap()), ids(&mail));
    let record = store.failed_job(&a.id).await.unwrap().expect("recorded");
    assert_eq!(record.error, "boom mail");
    assert_eq!(record.causes, ["inner", "root"]);
    assert_eq!(
        (record.queue.as_str(), record.job.as_str(), record.attempts),
        ("mail", "noop", 1)
    );
    assert_eq!(Envelope::decode(&record.envelope).unwrap().id, a.id);
    assert_eq!(store.stats().await.unwrap().failed, 2);
    assert!(store.forget_failed(&a.id).await.unwrap());
    assert!(!store.forget_failed(&a.id).await.unwrap());
    assert_eq!(
        store.prune_failed(Duration::from_secs(3600)).await.unwrap(),
        0
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        store.prune_failed(Duration::from_millis(1)).await.unwrap(),
        1
    );
    assert_eq!(store.flush_failed().await.unwrap(), 0);
}

/// Retrying a failed job puts it back with the same id and fresh counters.
pub async fn retry_requeues_failed_jobs(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let jobs: Vec<NewJob> = ["a", "a", "b"]
        .iter()
        .map(|q| new_job(q, Duration::ZERO))
        .collect();
    store.push(&jobs).await.unwrap();
    let w = worker(&store, "w", LEASE).await;
    let got = reserve_from(&store, &w, &["a", "b"], 3).await;
    let fails: Vec<Settlement> = got
        .iter()
        .map(|j| Settlement::fail(j.id.clone(), j.token, "x".into(), vec![]))
        .collect();
    store.settle(&w, &fails).await.unwrap();
    let one = store
        .retry_failed(&RetrySelector::Ids(vec![jobs[0].id.clone()]))
        .await
        .unwrap();
    assert_eq!(one, [jobs[0].id.clone()]);
    let info = store.job(&jobs[0].id).await.unwrap().expect("queued again");
    assert_eq!((info.state, info.attempts), (JobState::Pending, 0));
    let by_queue = store
        .retry_failed(&RetrySelector::All {
            queue: Some("b".into()),
        })
        .await
        .unwrap();
    assert_eq!(by_queue, [jobs[2].id.clone()]);
    let rest = store
        .retry_failed(&RetrySelector::All { queue: None })
        .await
        .unwrap();
    assert_eq!(rest, [jobs[1].id.clone()]);
    assert_eq!(
        store.failed_jobs(&FailedFilter::default()).await.unwrap().1,
        0
    );
    let unknown = store
        .retry_failed(&RetrySelector::Ids(vec!["nope".into()]))
        .await
        .unwrap();
    assert!(unknown.is_empty());
}

/// Status counts, listings, single-job views and the operator's job commands.
pub async fn inspection_and_job_commands(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let ready = new_job("default", Duration::ZERO);
    let held = new_job("default", Duration::ZERO);
    let later = new_job("default", Duration::from_secs(3600));
    let other = new_job("emails", Duration::ZERO);
    store.push(std::slice::from_ref(&held)).await.unwrap();
    let w = worker(&store, "w", LEASE).await;
    reserve_default(&store, &w, 1).await;
    store
        .push(&[ready.clone(), later.clone(), other.clone()])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let stats = store.stats().await.unwrap();
    let names: Vec<&str> = stats.queues.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["default", "emails"]);
    let d = &stats.queues[0];
    assert_eq!((d.pending, d.delayed, d.reserved), (1, 1, 1));
    assert!(d.oldest_ready_age_ms >= 20, "{}", d.oldest_ready_age_ms);
    assert_eq!(stats.workers.len(), 1);
    let delayed = store
        .jobs(&JobFilter {
            state: Some(JobState::Delayed),
            ..Default::default()
        })
        .await
        .unwrap();
    let delayed: Vec<String> = delayed.into_iter().map(|j| j.id).collect();
    assert_eq!(delayed, vec![later.id.clone()]);
    let emails = store
        .jobs(&JobFilter {
            queue: Some("emails".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(emails.len(), 1);
    assert_eq!(store.jobs(&JobFilter::default()).await.unwrap().len(), 4);
    assert_eq!(
        store
            .job(&held.id)
            .await
            .unwrap()
            .unwrap()
            .worker
            .as_deref(),
        Some(w.as_str())
    );
    // A held job says when it was reserved (store clock); a waiting one does not.
    let reserved = store
        .jobs(&JobFilter {
            state: Some(JobState::Reserved),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(reserved.len(), 1);
    let at = reserved[0]
        .reserved_at
        .expect("a reserved job has its reservation time");
    let local = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(
        (at - local).abs() < 60_000,
        "reserved_at {at} is near now {local}"
    );
    assert_eq!(
        store.job(&held.id).await.unwrap().unwrap().reserved_at,
        Some(at)
    );
    assert_eq!(
        store.job(&ready.id).await.unwrap().unwrap().reserved_at,
        None
    );
    assert!(store.job("missing").await.unwrap().is_none());
    // run-now makes a delayed job pending; a pending one is not "delayed".
    assert!(store.run_job_now(&later.id).await.unwrap());
    assert!(!store.run_job_now(&ready.id).await.unwrap());
    assert_eq!(
        store.job(&later.id).await.unwrap().unwrap().state,
        JobState::Pending
    );
    // A held job can't be deleted; a pending one can.
    assert!(!store.delete_job(&held.id).await.unwrap());
    assert!(store.delete_job(&ready.id).await.unwrap());
    assert!(!store.delete_job(&ready.id).await.unwrap());
    // clear removes the waiting jobs of one queue, not the reserved ones.
    assert_eq!(store.clear("default").await.unwrap(), 1);
    assert_eq!(store.clear("emails").await.unwrap(), 1);
    assert_eq!(store.stats().await.unwrap().queues[0].reserved, 1);
}

/// The restart epoch starts at 0 and every signal moves it forward.
pub async fn restart_epoch_moves_forward(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    assert_eq!(store.restart_epoch().await.unwrap(), 0);
    let first = store.signal_restart().await.unwrap();
    let second = store.signal_restart().await.unwrap();
    assert!(first > 0 && second > first);
    assert_eq!(store.restart_epoch().await.unwrap(), second);
    let w = worker(&store, "w", LEASE).await;
    assert_eq!(
        store.heartbeat(&w, LEASE).await.unwrap().restart_epoch,
        second
    );
}
