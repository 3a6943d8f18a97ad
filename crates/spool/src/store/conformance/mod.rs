//! The one conformance suite every store passes: the store contract written as tests.
//!
//! Each check takes a fresh, migrated, empty store. A store crate runs them all with
//! [`conformance_tests!`](crate::conformance_tests):
//!
//! ```ignore
//! spool::conformance_tests!(async { my_store::open_fresh().await });
//! ```
//!
//! Timing follows D-6: lower bounds are checked exactly, upper bounds with wide slack.

use std::{sync::Arc, time::Duration};

use super::{
    FailedFilter, JobFilter, JobState, NewJob, PushOutcome, ReleaseKind, RetrySelector, Settlement,
    Store, WorkerInfo,
};
use crate::envelope::Envelope;

pub mod workflow;

const LEASE: Duration = Duration::from_secs(30);

/// A new job for `queue` with `delay`.
pub fn new_job(queue: &str, delay: Duration) -> NewJob {
    NewJob::new(&Envelope::new("noop", queue, serde_json::json!({})), delay).expect("encodes")
}

fn ids(jobs: &[NewJob]) -> Vec<String> {
    jobs.iter().map(|j| j.id.clone()).collect()
}

async fn worker(store: &Arc<dyn Store>, name: &str, lease: Duration) -> String {
    let id = format!("{name}-{}", crate::envelope::new_id());
    let info = WorkerInfo {
        id: id.clone(),
        host: "test-host".into(),
        pid: std::process::id(),
        queues: vec!["default".into()],
    };
    store
        .register_worker(&info, lease)
        .await
        .expect("register worker");
    id
}

fn q(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn complete(id: &str, token: i64) -> Settlement {
    Settlement::complete(id, token)
}

/// Jobs come back in push order, each with attempt 1 and a token; reserved jobs are hidden.
pub async fn push_then_reserve_in_order(store: Arc<dyn Store>) {
    let jobs: Vec<NewJob> = (0..5).map(|_| new_job("default", Duration::ZERO)).collect();
    let outcomes = store.push(&jobs).await.unwrap();
    assert_eq!(outcomes, vec![PushOutcome::Queued; 5]);
    let w = worker(&store, "w", LEASE).await;
    let got = store.reserve(&w, &q(&["default"]), 3).await.unwrap();
    assert_eq!(
        got.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
        ids(&jobs)[..3]
    );
    assert!(
        got.iter()
            .all(|j| j.attempts == 1 && j.recoveries == 0 && j.queue == "default")
    );
    let envelope = Envelope::decode(&got[0].envelope).unwrap();
    assert_eq!(envelope.id, jobs[0].id);
    let rest = store.reserve(&w, &q(&["default"]), 10).await.unwrap();
    assert_eq!(
        rest.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
        ids(&jobs)[3..]
    );
    assert!(
        store
            .reserve(&w, &q(&["default"]), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A job id that already exists is reported, not duplicated, also within one batch.
pub async fn duplicate_ids_are_already_queued(store: Arc<dyn Store>) {
    let job = new_job("default", Duration::ZERO);
    assert_eq!(
        store.push(std::slice::from_ref(&job)).await.unwrap(),
        [PushOutcome::Queued]
    );
    let other = new_job("default", Duration::ZERO);
    let outcomes = store
        .push(&[job.clone(), other.clone(), other])
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [
            PushOutcome::AlreadyQueued,
            PushOutcome::Queued,
            PushOutcome::AlreadyQueued
        ]
    );
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.queues[0].pending, 2);
}

/// A delayed job is not reserved before its time and is reserved after it (store clock).
pub async fn delayed_jobs_wait_their_turn(store: Arc<dyn Store>) {
    let delayed = new_job("default", Duration::from_millis(400));
    store.push(std::slice::from_ref(&delayed)).await.unwrap();
    let w = worker(&store, "w", LEASE).await;
    assert!(
        store
            .reserve(&w, &q(&["default"]), 1)
            .await
            .unwrap()
            .is_empty()
    );
    let next = store
        .next_available_in(&q(&["default"]))
        .await
        .unwrap()
        .expect("a delayed job");
    assert!(
        next <= Duration::from_millis(400) && next > Duration::from_millis(100),
        "{next:?}"
    );
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.queues[0].pending, stats.queues[0].delayed), (0, 1));
    tokio::time::sleep(Duration::from_millis(450)).await;
    let got = store.reserve(&w, &q(&["default"]), 1).await.unwrap();
    assert_eq!(got.len(), 1);
    assert!(
        store
            .next_available_in(&q(&["default"]))
            .await
            .unwrap()
            .is_none()
    );
}

/// Queues are drained in the order given, and never more than `limit` jobs are taken.
pub async fn reserve_follows_queue_priority(store: Arc<dyn Store>) {
    let low: Vec<NewJob> = (0..3).map(|_| new_job("low", Duration::ZERO)).collect();
    let high: Vec<NewJob> = (0..2).map(|_| new_job("high", Duration::ZERO)).collect();
    store.push(&low).await.unwrap();
    store.push(&high).await.unwrap();
    let w = worker(&store, "w", LEASE).await;
    let got = store.reserve(&w, &q(&["high", "low"]), 3).await.unwrap();
    let queues: Vec<&str> = got.iter().map(|j| j.queue.as_str()).collect();
    assert_eq!(queues, ["high", "high", "low"]);
    assert!(
        store
            .reserve(&w, &q(&["other"]), 3)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Completing deletes the job and counts it; settlements are fenced on worker and token.
pub async fn settlements_are_fenced(store: Arc<dyn Store>) {
    let jobs: Vec<NewJob> = (0..2).map(|_| new_job("default", Duration::ZERO)).collect();
    store.push(&jobs).await.unwrap();
    let a = worker(&store, "a", LEASE).await;
    let b = worker(&store, "b", LEASE).await;
    let got = store.reserve(&a, &q(&["default"]), 2).await.unwrap();
    // Another worker, or a stale token, cannot settle the job.
    assert_eq!(
        store
            .settle(&b, &[complete(&got[0].id, got[0].token)])
            .await
            .unwrap(),
        [false]
    );
    let stale = complete(&got[0].id, got[0].token - 1);
    assert_eq!(store.settle(&a, &[stale]).await.unwrap(), [false]);
    let done = [
        complete(&got[0].id, got[0].token),
        complete(&got[1].id, got[1].token),
    ];
    assert_eq!(store.settle(&a, &done).await.unwrap(), [true, true]);
    assert_eq!(
        store.settle(&a, &done[..1]).await.unwrap(),
        [false],
        "already completed"
    );
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.processed, 2);
    assert!(
        stats
            .queues
            .iter()
            .all(|q| q.pending + q.delayed + q.reserved == 0)
    );
}

/// Releases put the job back with the counters D-2 asks for.
pub async fn releases_keep_the_counters_right(store: Arc<dyn Store>) {
    let job = new_job("default", Duration::ZERO);
    store.push(std::slice::from_ref(&job)).await.unwrap();
    let w = worker(&store, "w", LEASE).await;
    let cases = [
        (ReleaseKind::RetryAfterError, 1, 0, 1),
        (ReleaseKind::Released, 2, 0, 1),
        (ReleaseKind::Deferred, 2, 1, 1),
        (ReleaseKind::Shutdown, 2, 1, 1),
    ];
    for (kind, attempts, deferrals, exceptions) in cases {
        let got = store.reserve(&w, &q(&["default"]), 1).await.unwrap();
        assert_eq!(got.len(), 1, "{kind:?}");
        let release = Settlement::Release {
            id: job.id.clone(),
            token: got[0].token,
            delay: Duration::ZERO,
            kind,
            error: Some(format!("{kind:?}")),
        };
        assert_eq!(store.settle(&w, &[release]).await.unwrap(), [true]);
        let info = store.job(&job.id).await.unwrap().expect("still queued");
        assert_eq!(info.state, JobState::Pending);
        assert_eq!(
            (info.attempts, info.deferrals),
            (attempts, deferrals),
            "{kind:?}"
        );
        assert_eq!(
            info.last_error.as_deref(),
            Some(format!("{kind:?}").as_str())
        );
        let again = store.reserve(&w, &q(&["default"]), 1).await.unwrap();
        assert_eq!(again[0].exceptions, exceptions, "{kind:?}");
        assert!(
            again[0].token > got[0].token,
            "a new reservation gets a new token"
        );
        let back = Settlement::Release {
            id: job.id.clone(),
            token: again[0].token,
            delay: Duration::ZERO,
            kind: ReleaseKind::Shutdown,
            error: None,
        };
        store.settle(&w, &[back]).await.unwrap();
    }
    // A release with a delay makes the job delayed.
    let got = store.reserve(&w, &q(&["default"]), 1).await.unwrap();
    let later = Settlement::Release {
        id: job.id.clone(),
        token: got[0].token,
        delay: Duration::from_secs(60),
        kind: ReleaseKind::Released,
        error: None,
    };
    store.settle(&w, &[later]).await.unwrap();
    assert_eq!(
        store.job(&job.id).await.unwrap().unwrap().state,
        JobState::Delayed
    );
}

/// Failing moves the job to the failed store with its error and causes; the failed store can
/// be listed, shown, forgotten, flushed and pruned.
pub async fn failed_store_keeps_records(store: Arc<dyn Store>) {
    let a = new_job("mail", Duration::ZERO);
    let b = new_job("default", Duration::ZERO);
    store.push(&[a.clone(), b.clone()]).await.unwrap();
    let w = worker(&store, "w", LEASE).await;
    let got = store
        .reserve(&w, &q(&["mail", "default"]), 2)
        .await
        .unwrap();
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
pub async fn retry_requeues_failed_jobs(store: Arc<dyn Store>) {
    let jobs: Vec<NewJob> = ["a", "a", "b"]
        .iter()
        .map(|q| new_job(q, Duration::ZERO))
        .collect();
    store.push(&jobs).await.unwrap();
    let w = worker(&store, "w", LEASE).await;
    let got = store.reserve(&w, &q(&["a", "b"]), 3).await.unwrap();
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

/// The reaper returns the jobs of workers whose lease expired, refunding the attempt and
/// counting a recovery; a worker that heartbeats keeps its jobs.
pub async fn reaper_recovers_jobs_of_dead_workers(store: Arc<dyn Store>) {
    let jobs: Vec<NewJob> = (0..2).map(|_| new_job("default", Duration::ZERO)).collect();
    store.push(&jobs).await.unwrap();
    // Long enough that a loaded machine still reaps before it ends (D-6: slack on upper bounds).
    let short = Duration::from_millis(1500);
    let dead = worker(&store, "dead", short).await;
    let alive = worker(&store, "alive", short).await;
    let d = store.reserve(&dead, &q(&["default"]), 1).await.unwrap();
    let a = store.reserve(&alive, &q(&["default"]), 1).await.unwrap();
    assert_eq!(
        store.reap(3).await.unwrap().recovered,
        0,
        "leases still current"
    );
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(store.heartbeat(&alive, short).await.unwrap().lease_kept);
    }
    let report = store.reap(3).await.unwrap();
    assert_eq!(
        (report.recovered, report.failed, report.workers_removed),
        (1, 0, 1)
    );
    let info = store.job(&d[0].id).await.unwrap().unwrap();
    assert_eq!(
        (info.state, info.attempts, info.recoveries),
        (JobState::Pending, 0, 1)
    );
    assert_eq!(
        store.job(&a[0].id).await.unwrap().unwrap().state,
        JobState::Reserved
    );
    // The dead worker's late result is refused, and its heartbeat says the lease is gone.
    assert_eq!(
        store
            .settle(&dead, &[complete(&d[0].id, d[0].token)])
            .await
            .unwrap(),
        [false]
    );
    assert!(!store.heartbeat(&dead, short).await.unwrap().lease_kept);
}

/// A job whose workers keep dying fails as a poison pill at the `max_recoveries`-th loss.
pub async fn poison_pills_fail_after_max_recoveries(store: Arc<dyn Store>) {
    let job = new_job("default", Duration::ZERO);
    store.push(std::slice::from_ref(&job)).await.unwrap();
    let short = Duration::from_millis(100);
    for round in 1..=3 {
        let w = worker(&store, "doomed", short).await;
        assert_eq!(
            store.reserve(&w, &q(&["default"]), 1).await.unwrap().len(),
            1
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
        let report = store.reap(3).await.unwrap();
        if round < 3 {
            assert_eq!((report.recovered, report.failed), (1, 0), "round {round}");
        } else {
            assert_eq!((report.recovered, report.failed), (0, 1), "round {round}");
        }
    }
    let record = store
        .failed_job(&job.id)
        .await
        .unwrap()
        .expect("failed as poison pill");
    assert_eq!(record.error, "worker lost 3 times while running this job");
}

/// Deregistering hands back the worker's jobs without using an attempt.
pub async fn deregister_hands_jobs_back(store: Arc<dyn Store>) {
    let job = new_job("default", Duration::ZERO);
    store.push(std::slice::from_ref(&job)).await.unwrap();
    let w = worker(&store, "w", LEASE).await;
    store.reserve(&w, &q(&["default"]), 1).await.unwrap();
    assert_eq!(
        store.stats().await.unwrap().workers[0].busy,
        vec![job.id.clone()]
    );
    store.deregister_worker(&w).await.unwrap();
    let info = store.job(&job.id).await.unwrap().unwrap();
    assert_eq!((info.state, info.attempts), (JobState::Pending, 0));
    assert!(store.stats().await.unwrap().workers.is_empty());
}

/// Status counts, listings, single-job views and the operator's job commands.
pub async fn inspection_and_job_commands(store: Arc<dyn Store>) {
    let ready = new_job("default", Duration::ZERO);
    let held = new_job("default", Duration::ZERO);
    let later = new_job("default", Duration::from_secs(3600));
    let other = new_job("emails", Duration::ZERO);
    store.push(std::slice::from_ref(&held)).await.unwrap();
    let w = worker(&store, "w", LEASE).await;
    store.reserve(&w, &q(&["default"]), 1).await.unwrap();
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
pub async fn restart_epoch_moves_forward(store: Arc<dyn Store>) {
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

/// A push wakes an idle subscriber.
pub async fn pushes_wake_idle_workers(store: Arc<dyn Store>) {
    let mut wakeups = store.wakeups();
    let pusher = store.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        pusher
            .push(&[new_job("default", Duration::ZERO)])
            .await
            .unwrap();
    });
    let started = std::time::Instant::now();
    assert!(
        wakeups.wait(Duration::from_secs(10)).await,
        "no wake-up after a push"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// The store computes the retry deadline from the job's retry window with its own clock.
pub async fn retry_deadline_comes_from_the_store_clock(store: Arc<dyn Store>) {
    let mut envelope = Envelope::new("noop", "default", serde_json::json!({}));
    envelope.options.retry_for = Some(Duration::from_secs(60));
    store
        .push(&[NewJob::new(&envelope, Duration::ZERO).unwrap()])
        .await
        .unwrap();
    let w = worker(&store, "w", LEASE).await;
    let got = store.reserve(&w, &q(&["default"]), 1).await.unwrap();
    let until = got[0].retry_until.expect("a deadline");
    let window = until - got[0].reserved_at;
    assert!((55_000..=60_000).contains(&window), "{window}");
}

/// Many workers reserving at once never get the same job twice, and nothing is lost.
pub async fn concurrent_reservers_never_share_a_job(store: Arc<dyn Store>) {
    let jobs: Vec<NewJob> = (0..400)
        .map(|_| new_job("default", Duration::ZERO))
        .collect();
    store.push(&jobs).await.unwrap();
    let mut tasks = Vec::new();
    for n in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let w = worker(&store, &format!("w{n}"), LEASE).await;
            let mut mine = Vec::new();
            loop {
                let got = store.reserve(&w, &q(&["default"]), 7).await.unwrap();
                if got.is_empty() {
                    break mine;
                }
                let done: Vec<Settlement> = got.iter().map(|j| complete(&j.id, j.token)).collect();
                assert!(store.settle(&w, &done).await.unwrap().iter().all(|ok| *ok));
                mine.extend(got.into_iter().map(|j| j.id));
            }
        }));
    }
    let mut seen = std::collections::HashSet::new();
    for t in tasks {
        for id in t.await.unwrap() {
            assert!(seen.insert(id), "a job was reserved twice");
        }
    }
    assert_eq!(seen.len(), 400);
    assert_eq!(store.stats().await.unwrap().processed, 400);
}

/// The worker's hot path: settling and claiming in one call behaves like the two calls.
pub async fn settle_and_reserve_acks_then_claims(store: Arc<dyn Store>) {
    let jobs: Vec<NewJob> = (0..4).map(|_| new_job("default", Duration::ZERO)).collect();
    store.push(&jobs).await.unwrap();
    let w = worker(&store, "w", LEASE).await;
    let first = store.reserve(&w, &q(&["default"]), 2).await.unwrap();
    let acks = [
        complete(&first[0].id, first[0].token),
        complete(&first[1].id, first[1].token - 1),
    ];
    let (applied, claimed) = store
        .settle_and_reserve(&w, &acks, &q(&["default"]), 5)
        .await
        .unwrap();
    assert_eq!(applied, [true, false], "the stale token is refused");
    let ids: Vec<String> = claimed.iter().map(|j| j.id.clone()).collect();
    assert_eq!(ids, [jobs[2].id.clone(), jobs[3].id.clone()]);
    assert!(store.job(&first[0].id).await.unwrap().is_none());
    assert_eq!(store.stats().await.unwrap().processed, 1);
    // A mixed batch (a release among the completions), and nothing left to claim.
    let mixed = [
        complete(&claimed[0].id, claimed[0].token),
        Settlement::Release {
            id: claimed[1].id.clone(),
            token: claimed[1].token,
            delay: Duration::from_secs(60),
            kind: ReleaseKind::Released,
            error: None,
        },
    ];
    let (applied, more) = store
        .settle_and_reserve(&w, &mixed, &q(&["default"]), 5)
        .await
        .unwrap();
    assert_eq!(applied, [true, true]);
    assert!(
        more.is_empty(),
        "the released job is delayed and the held one is not free"
    );
    let (applied, none) = store
        .settle_and_reserve(&w, &[], &q(&["default"]), 5)
        .await
        .unwrap();
    assert!(applied.is_empty() && none.is_empty());
}

/// Migrating again is harmless.
pub async fn migrate_is_idempotent(store: Arc<dyn Store>) {
    store
        .push(&[new_job("default", Duration::ZERO)])
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.stats().await.unwrap().queues[0].pending, 1);
}

/// Instantiates every conformance check as a `#[tokio::test]` against stores made by `$make`
/// (an expression evaluating to a future of `Option<Arc<dyn Store>>`, fresh and empty each
/// time; `None` skips, e.g. when a server is unreachable outside CI).
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@each $make;
            push_then_reserve_in_order, duplicate_ids_are_already_queued,
            delayed_jobs_wait_their_turn, reserve_follows_queue_priority,
            settlements_are_fenced, releases_keep_the_counters_right,
            failed_store_keeps_records, retry_requeues_failed_jobs,
            reaper_recovers_jobs_of_dead_workers, poison_pills_fail_after_max_recoveries,
            deregister_hands_jobs_back, inspection_and_job_commands,
            restart_epoch_moves_forward, pushes_wake_idle_workers,
            retry_deadline_comes_from_the_store_clock, concurrent_reservers_never_share_a_job,
            settle_and_reserve_acks_then_claims, migrate_is_idempotent);
    };
    (@each $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if let Some(store) = $make.await {
                    $crate::store::conformance::$name(store).await;
                }
            }
        )*
    };
}
