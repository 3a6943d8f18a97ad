//! Worker behaviour against the embedded SQLite store: retries, timeouts, panics, bad input,
//! priorities, leases, shutdown. Timing follows D-6: lower bounds exact, upper bounds with
//! at least 5x slack, units of 100s of ms.
#![cfg(feature = "sqlite")]

mod support;

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock, Mutex},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use spool::{
    Backoff, Job, JobContext, JobError, JobResult, Registry, Spool, Store, Worker, WorkerConfig,
    store::{FailedFilter, JobState, NewJob},
    worker::ExitReason,
};

/// What each probe run saw, by key.
#[derive(Debug, Clone)]
struct Run {
    started: Instant,
    attempt: u32,
    deferrals: u32,
    queue: String,
}

static RUNS: LazyLock<Mutex<HashMap<String, Vec<Run>>>> = LazyLock::new(Default::default);

fn runs(key: &str) -> Vec<Run> {
    RUNS.lock().unwrap().get(key).cloned().unwrap_or_default()
}

/// A test job whose behaviour is set by its payload.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Probe {
    key: String,
    /// Fail the first N attempts.
    #[serde(default)]
    fail_first: u32,
    /// Sleep this long.
    #[serde(default)]
    sleep_ms: u64,
    #[serde(default)]
    panic: bool,
    /// Release (uses the attempt) on attempts up to N.
    #[serde(default)]
    release_first: u32,
    /// Defer (no attempt) this many times in all.
    #[serde(default)]
    defer_first: u32,
}

impl Job for Probe {
    const NAME: &'static str = "probe";

    async fn handle(self, ctx: JobContext) -> JobResult {
        let run = Run {
            started: Instant::now(),
            attempt: ctx.attempt(),
            deferrals: ctx.deferrals(),
            queue: ctx.queue().to_string(),
        };
        RUNS.lock()
            .unwrap()
            .entry(self.key.clone())
            .or_default()
            .push(run);
        if self.panic {
            panic!("boom from {}", self.key);
        }
        if ctx.deferrals() < self.defer_first {
            return Err(JobError::defer(
                Duration::from_millis(50),
                "HTTP 429 from the provider",
            ));
        }
        if ctx.attempt() <= self.release_first {
            return Err(JobError::release(Duration::from_millis(50)));
        }
        if self.sleep_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.sleep_ms)).await;
        }
        if ctx.attempt() <= self.fail_first {
            return Err(JobError::retry(format!(
                "planned failure {}",
                ctx.attempt()
            )));
        }
        RUNS.lock()
            .unwrap()
            .entry(format!("{}:done", self.key))
            .or_default()
            .push(Run {
                started: Instant::now(),
                attempt: ctx.attempt(),
                deferrals: ctx.deferrals(),
                queue: ctx.queue().to_string(),
            });
        Ok(())
    }
}

fn key() -> String {
    spool::new_id()
}

async fn store() -> Arc<dyn Store> {
    support::sqlite_store().await.0
}

fn registry() -> Registry {
    Registry::with_builtins()
        .register::<Probe>()
        .register::<Ping>()
}

/// A job with no fields: its payload is JSON `null`.
#[derive(Debug, Serialize, Deserialize)]
struct Ping;

static PINGS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Job for Ping {
    const NAME: &'static str = "ping";

    async fn handle(self, _ctx: JobContext) -> JobResult {
        PINGS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

fn config() -> WorkerConfig {
    WorkerConfig {
        sleep: Duration::from_millis(50),
        ..WorkerConfig::default()
    }
}

/// Runs a worker until its stop condition (at most 30 s).
async fn work(store: &Arc<dyn Store>, config: WorkerConfig) -> spool::WorkerExit {
    let worker = Worker::new(store.clone(), registry(), config);
    tokio::time::timeout(Duration::from_secs(30), worker.run())
        .await
        .expect("worker finished in time")
        .expect("worker ran")
}

fn until_done() -> WorkerConfig {
    WorkerConfig {
        until_done: true,
        ..config()
    }
}

async fn failed_error(store: &Arc<dyn Store>, id: &str) -> String {
    store
        .failed_job(id)
        .await
        .unwrap()
        .expect("a failed record")
        .error
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_follow_the_backoff_list_then_fail_with_the_last_error() {
    // S-RETRY-5: tries=3, backoff [200ms, 500ms], always failing.
    let store = store().await;
    let spool = Spool::new(store.clone());
    let k = key();
    let backoff = Backoff::List(vec![Duration::from_millis(200), Duration::from_millis(500)]);
    let out = spool
        .dispatch(Probe {
            key: k.clone(),
            fail_first: 99,
            ..Default::default()
        })
        .tries(3)
        .backoff(backoff)
        .await
        .unwrap();
    let exit = work(&store, until_done()).await;
    assert_eq!(exit.reason, ExitReason::Done);
    let runs = runs(&k);
    assert_eq!(
        runs.iter().map(|r| r.attempt).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(runs[1].started - runs[0].started >= Duration::from_millis(200));
    assert!(runs[2].started - runs[1].started >= Duration::from_millis(500));
    assert!(runs[2].started - runs[0].started < Duration::from_secs(4));
    let record = store.failed_job(&out.id).await.unwrap().unwrap();
    assert_eq!(
        (record.error.as_str(), record.attempts),
        ("planned failure 3", 3)
    );
    assert_eq!(
        store.failed_jobs(&FailedFilter::default()).await.unwrap().1,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_recovers_on_retry_completes() {
    let store = store().await;
    let k = key();
    Spool::new(store.clone())
        .dispatch(Probe {
            key: k.clone(),
            fail_first: 2,
            ..Default::default()
        })
        .tries(0)
        .backoff(Backoff::fixed(Duration::ZERO))
        .await
        .unwrap();
    let exit = work(&store, until_done()).await;
    assert_eq!((exit.completed, exit.failed), (1, 0));
    assert_eq!(runs(&format!("{k}:done"))[0].attempt, 3);
    assert_eq!(store.stats().await.unwrap().processed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_cancel_the_attempt_and_fail_it() {
    // S-JOB-1: timeout 300ms, tries 1, a 3 s job: failed with the timeout at ≈300ms.
    let store = store().await;
    let k = key();
    let out = Spool::new(store.clone())
        .dispatch(Probe {
            key: k.clone(),
            sleep_ms: 3000,
            ..Default::default()
        })
        .tries(1)
        .timeout(Duration::from_millis(300))
        .await
        .unwrap();
    let started = Instant::now();
    work(&store, until_done()).await;
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    assert!(
        runs(&format!("{k}:done")).is_empty(),
        "the handler was not cancelled"
    );
    assert_eq!(failed_error(&store, &out.id).await, "timed out after 300ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_are_caught_recorded_and_the_worker_goes_on() {
    let store = store().await;
    let spool = Spool::new(store.clone());
    let k = key();
    let bad = spool
        .dispatch(Probe {
            key: k.clone(),
            panic: true,
            ..Default::default()
        })
        .tries(1)
        .await
        .unwrap();
    let good_key = key();
    spool
        .dispatch(Probe {
            key: good_key.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let exit = work(&store, until_done()).await;
    assert_eq!((exit.completed, exit.failed), (1, 1));
    assert_eq!(
        failed_error(&store, &bad.id).await,
        format!("panicked: boom from {k}")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_ends_in_the_failed_store_with_a_precise_reason() {
    let store = store().await;
    let raw = |id: &str, envelope: &str| NewJob {
        id: id.into(),
        queue: "default".into(),
        job: "noop".into(),
        envelope: envelope.into(),
        delay: Duration::ZERO,
        retry_for: None,
        batch_id: None,
        unique: None,
        tags: Vec::new(),
        max_payload: spool::DEFAULT_MAX_PAYLOAD_BYTES,
    };
    let unknown = spool::Envelope::new("no_such_job", "default", serde_json::json!({}));
    let bad_payload = spool::Envelope::new("sleep", "default", serde_json::json!({"ms": "soon"}));
    let shell = spool::Envelope::new("shell", "default", serde_json::json!({"cmd": "true"}));
    store
        .push(&[
            raw("malformed", "{not json"),
            raw("future", r#"{"v":9,"id":"future","job":"noop","queue":"default","payload":{},"created_at":0}"#),
            NewJob::new(&unknown, Duration::ZERO).unwrap(),
            NewJob::new(&bad_payload, Duration::ZERO).unwrap(),
            NewJob::new(&shell, Duration::ZERO).unwrap(),
            NewJob::new(&spool::Envelope::new("noop", "default", serde_json::json!({})), Duration::ZERO).unwrap(),
        ])
        .await
        .unwrap();
    let exit = work(&store, until_done()).await;
    assert_eq!((exit.completed, exit.failed), (1, 5));
    assert!(
        failed_error(&store, "malformed")
            .await
            .starts_with("malformed envelope: ")
    );
    assert!(
        failed_error(&store, "future")
            .await
            .contains("unsupported envelope version 9")
    );
    assert_eq!(
        failed_error(&store, &unknown.id).await,
        "unknown job type `no_such_job`: no handler is registered under that name in this worker"
    );
    assert!(
        failed_error(&store, &bad_payload.id)
            .await
            .starts_with("payload does not match job `sleep`")
    );
    assert_eq!(
        failed_error(&store, &shell.id).await,
        "start the worker with --allow shell"
    );
    // Retrying from the failed store works like any retry.
    let retried = store
        .retry_failed(&spool::store::RetrySelector::Ids(vec![shell.id.clone()]))
        .await
        .unwrap();
    assert_eq!(retried, vec![shell.id.clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferrals_do_not_use_attempts_but_releases_do() {
    // D-2: deferred twice, then succeeds on its first attempt.
    let store = store().await;
    let spool = Spool::new(store.clone());
    let deferred = key();
    spool
        .dispatch(Probe {
            key: deferred.clone(),
            defer_first: 2,
            ..Default::default()
        })
        .tries(1)
        .await
        .unwrap();
    let released = key();
    spool
        .dispatch(Probe {
            key: released.clone(),
            release_first: 1,
            ..Default::default()
        })
        .tries(2)
        .await
        .unwrap();
    let exit = work(&store, until_done()).await;
    assert_eq!((exit.completed, exit.failed), (2, 0));
    let done = runs(&format!("{deferred}:done"));
    assert_eq!((done[0].attempt, done[0].deferrals), (1, 2));
    assert_eq!(runs(&format!("{released}:done"))[0].attempt, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_exceptions_fails_before_tries_run_out() {
    let store = store().await;
    let k = key();
    let out = Spool::new(store.clone())
        .dispatch(Probe {
            key: k.clone(),
            fail_first: 99,
            ..Default::default()
        })
        .tries(25)
        .max_exceptions(3)
        .backoff(Backoff::fixed(Duration::ZERO))
        .await
        .unwrap();
    work(&store, until_done()).await;
    assert_eq!(runs(&k).len(), 3);
    assert_eq!(failed_error(&store, &out.id).await, "planned failure 3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_deadline_beats_tries() {
    // S-RETRY-4: tries=1 but a 1 s retry window with 200ms backoff: several attempts, then fail.
    let store = store().await;
    let k = key();
    Spool::new(store.clone())
        .dispatch(Probe {
            key: k.clone(),
            fail_first: 99,
            ..Default::default()
        })
        .tries(1)
        .retry_for(Duration::from_secs(1))
        .backoff(Backoff::fixed(Duration::from_millis(200)))
        .await
        .unwrap();
    let exit = work(&store, until_done()).await;
    assert_eq!(exit.failed, 1);
    let n = runs(&k).len();
    assert!((3..=7).contains(&n), "{n} attempts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_free_slot_takes_the_higher_priority_queue_first() {
    // S-PRIO-1: one slot busy with `low`; a `high` job pushed meanwhile runs next.
    let store = store().await;
    let spool = Spool::new(store.clone());
    let k = key();
    for _ in 0..5 {
        spool
            .dispatch(Probe {
                key: k.clone(),
                sleep_ms: 150,
                ..Default::default()
            })
            .on_queue("low")
            .await
            .unwrap();
    }
    let pusher = spool.clone();
    let high_key = k.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        pusher
            .dispatch(Probe {
                key: high_key,
                ..Default::default()
            })
            .on_queue("high")
            .await
            .unwrap();
    });
    let config = WorkerConfig {
        queues: vec!["high".into(), "low".into()],
        concurrency: 1,
        ..until_done()
    };
    work(&store, config).await;
    let order: Vec<String> = runs(&k).into_iter().map(|r| r.queue).collect();
    assert_eq!(order, ["low", "high", "low", "low", "low", "low"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_longer_than_the_lease_runs_once() {
    // S-REL-2 / D-1: lease 400ms, job 1.5s, two workers, tries 1: one run, no failure.
    let store = store().await;
    let k = key();
    Spool::new(store.clone())
        .dispatch(Probe {
            key: k.clone(),
            sleep_ms: 1500,
            ..Default::default()
        })
        .tries(1)
        .await
        .unwrap();
    let config = WorkerConfig {
        lease: Duration::from_millis(400),
        ..until_done()
    };
    let (a, b) = tokio::join!(work(&store, config.clone()), work(&store, config));
    assert_eq!(runs(&k).len(), 1);
    assert_eq!(a.completed + b.completed, 1);
    assert_eq!(a.failed + b.failed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_the_grace_period_then_hands_jobs_back() {
    let store = store().await;
    let spool = Spool::new(store.clone());
    let (quick, slow) = (key(), key());
    spool
        .dispatch(Probe {
            key: quick.clone(),
            sleep_ms: 200,
            ..Default::default()
        })
        .await
        .unwrap();
    let slow_job = spool
        .dispatch(Probe {
            key: slow.clone(),
            sleep_ms: 5000,
            ..Default::default()
        })
        .await
        .unwrap();
    let worker = Worker::new(
        store.clone(),
        registry(),
        WorkerConfig {
            grace: Duration::from_millis(500),
            ..config()
        },
    );
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.signal();
    let exit = tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(exit.reason, ExitReason::Signal);
    assert_eq!((exit.completed, exit.handed_back), (1, 1));
    assert_eq!(
        runs(&format!("{quick}:done")).len(),
        1,
        "the short job finished within the grace"
    );
    let info = store
        .job(&slow_job.id)
        .await
        .unwrap()
        .expect("handed back, not lost");
    assert_eq!(
        (info.state, info.attempts, info.recoveries),
        (JobState::Pending, 0, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_conditions() {
    let store = store().await;
    let spool = Spool::new(store.clone());
    spool
        .dispatch(Probe {
            key: key(),
            ..Default::default()
        })
        .await
        .unwrap();
    spool
        .dispatch(Probe {
            key: key(),
            ..Default::default()
        })
        .delay(Duration::from_secs(60))
        .await
        .unwrap();
    // S-WORK-2: --stop-when-empty runs the due job and exits though a delayed one exists.
    let exit = work(
        &store,
        WorkerConfig {
            stop_when_empty: true,
            ..config()
        },
    )
    .await;
    assert_eq!((exit.reason, exit.completed), (ExitReason::Empty, 1));
    // --once on an empty queue exits after one sleep.
    let exit = work(
        &store,
        WorkerConfig {
            once: true,
            ..config()
        },
    )
    .await;
    assert_eq!((exit.reason, exit.reserved), (ExitReason::Once, 0));
    // --max-jobs counts reservations.
    for _ in 0..3 {
        spool
            .dispatch(Probe {
                key: key(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let exit = work(
        &store,
        WorkerConfig {
            max_jobs: Some(2),
            concurrency: 1,
            ..config()
        },
    )
    .await;
    assert_eq!((exit.reason, exit.completed), (ExitReason::MaxJobs, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_restart_signal_stops_running_workers() {
    let store = store().await;
    let worker = Worker::new(
        store.clone(),
        registry(),
        WorkerConfig {
            lease: Duration::from_millis(600),
            ..config()
        },
    );
    let running = tokio::spawn(worker.run());
    tokio::time::sleep(Duration::from_millis(300)).await;
    store.signal_restart().await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(exit.reason, ExitReason::Restart);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatch_variants() {
    let store = store().await;
    let spool = Spool::new(store.clone());
    // Conditional dispatch.
    let skipped = spool.dispatch(Probe::default()).when(false).await.unwrap();
    assert_eq!(skipped.status, spool::DispatchStatus::Skipped);
    // Idempotent ids.
    let first = spool
        .dispatch(Probe::default())
        .id("order-42")
        .await
        .unwrap();
    let again = spool
        .dispatch(Probe::default())
        .id("order-42")
        .await
        .unwrap();
    assert_eq!(
        (first.id.as_str(), again.status),
        ("order-42", spool::DispatchStatus::AlreadyQueued)
    );
    // Oversized payloads are refused with a clear error; nothing is stored.
    let big = Probe {
        key: "x".repeat(300 * 1024),
        ..Default::default()
    };
    let err = spool.dispatch(big).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("over the 262144-byte payload limit"),
        "{err}"
    );
    // Bulk dispatch.
    let many = spool
        .dispatch_many((0..50).map(|_| Probe::default()))
        .await
        .unwrap();
    assert_eq!(many.len(), 50);
    assert_eq!(store.stats().await.unwrap().queues[0].pending, 51);
    // Synchronous dispatch: runs inline, errors reach the caller, nothing stored.
    let err = spool
        .dispatch_sync(Probe {
            key: key(),
            fail_first: 1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.message(), "planned failure 1");
    assert_eq!(
        store.failed_jobs(&FailedFilter::default()).await.unwrap().1,
        0
    );
}

#[tokio::test]
async fn fake_and_inline_modes_for_app_tests() {
    let (spool, recorder) = Spool::fake();
    recorder.assert_nothing_dispatched();
    spool
        .dispatch(Probe {
            key: "a".into(),
            ..Default::default()
        })
        .on_queue("mail")
        .await
        .unwrap();
    recorder.assert_dispatched::<Probe>();
    assert_eq!(recorder.dispatched::<Probe>()[0].key, "a");
    assert_eq!(recorder.on_queue("mail").len(), 1);

    let inline = Spool::inline(registry());
    let k = key();
    inline
        .dispatch(Probe {
            key: k.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(runs(&format!("{k}:done")).len(), 1);
    let err = inline
        .dispatch(Probe {
            key: key(),
            fail_first: 1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("planned failure 1"), "{err}");
}

/// Workers record each queue's mean run time in the store (what supervisors size `auto`
/// pools by): a queue of 30 ms sleeps shows a mean of at least 30 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_record_each_queue_s_mean_run_time() {
    use spool::store::RecordKind;
    let store = store().await;
    let spool = Spool::new(store.clone());
    for _ in 0..4 {
        spool
            .dispatch(spool::builtin::Sleep { ms: 30 })
            .on_queue("slow")
            .await
            .unwrap();
    }
    let config = WorkerConfig {
        queues: vec!["slow".into()],
        // Maintenance (which writes the run times) runs every third of the lease.
        lease: Duration::from_millis(900),
        ..config()
    };
    let worker = Worker::new(store.clone(), registry(), config);
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());
    let deadline = Instant::now() + Duration::from_secs(20);
    let mean = loop {
        let records = store.records(RecordKind::RunTime).await.unwrap();
        if let Some(slow) = records.iter().find(|r| r.name == "slow") {
            break slow.value;
        }
        assert!(Instant::now() < deadline, "no run time recorded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    stop.signal();
    running.await.unwrap().unwrap();
    assert!(
        (30_000..10_000_000).contains(&mean),
        "mean run time {mean} µs for 30 ms sleeps"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_without_fields_runs() {
    let store = store().await;
    Spool::new(store.clone()).dispatch(Ping).await.unwrap();
    work(&store, until_done()).await;
    let stats = store.stats().await.unwrap();
    assert_eq!(
        (stats.processed, stats.failed),
        (1, 0),
        "a null payload is a payload"
    );
    assert_eq!(PINGS.load(std::sync::atomic::Ordering::SeqCst), 1);
}
