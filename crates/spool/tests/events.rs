//! Event sequences (S-EVT-1..3) from a real worker on a temporary SQLite store.
#![cfg(feature = "sqlite")]

mod support;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use spool::{
    Backoff, DispatchStatus, Job, JobContext, JobError, JobResult, Registry, Spool, Store, Worker,
    WorkerConfig,
    events::{Event, Events},
    worker::ExitReason,
};

/// A job that does what its payload says, attempt by attempt.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Act {
    /// Return a retryable error on attempts up to N.
    #[serde(default)]
    fail_first: u32,
    /// Release (uses the attempt) on attempts up to N.
    #[serde(default)]
    release_first: u32,
    /// Defer (no attempt) this many times in all.
    #[serde(default)]
    defer_first: u32,
    /// Sleep this long (for timeouts).
    #[serde(default)]
    sleep_ms: u64,
    /// Fail at once with `JobError::fail`.
    #[serde(default)]
    give_up: bool,
}

impl Job for Act {
    const NAME: &'static str = "act";

    async fn handle(self, ctx: JobContext) -> JobResult {
        if self.give_up {
            return Err(JobError::fail("gave up"));
        }
        if ctx.deferrals() < self.defer_first {
            return Err(JobError::defer(Duration::from_millis(50), "rate limited"));
        }
        if ctx.attempt() <= self.release_first {
            return Err(JobError::release(Duration::from_millis(50)));
        }
        if self.sleep_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.sleep_ms)).await;
        }
        if ctx.attempt() <= self.fail_first {
            return Err(JobError::retry(format!("failure {}", ctx.attempt())));
        }
        Ok(())
    }
}

/// Every event, in order.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<Event>>>);

impl Log {
    fn attach(&self, events: &Events) {
        let log = self.0.clone();
        events.on(move |e| log.lock().unwrap().push(e.clone()));
    }

    fn all(&self) -> Vec<Event> {
        self.0.lock().unwrap().clone()
    }

    /// The names of one job's events.
    fn of(&self, id: &str) -> Vec<&'static str> {
        self.all()
            .iter()
            .filter(|e| e.job().is_some_and(|j| j.id == id))
            .map(Event::name)
            .collect()
    }
}

struct Setup {
    store: Arc<dyn Store>,
    spool: Spool,
    events: Events,
    log: Log,
}

async fn setup() -> Setup {
    let (store, _dir) = support::sqlite_store().await;
    let events = Events::new();
    let log = Log::default();
    log.attach(&events);
    let spool = Spool::new(store.clone()).with_events(events.clone());
    Setup {
        store,
        spool,
        events,
        log,
    }
}

impl Setup {
    fn worker(&self) -> Worker {
        let config = WorkerConfig {
            sleep: Duration::from_millis(50),
            until_done: true,
            events: self.events.clone(),
            ..WorkerConfig::default()
        };
        Worker::new(
            self.store.clone(),
            Registry::new().register::<Act>(),
            config,
        )
    }

    async fn work(&self) -> spool::WorkerExit {
        tokio::time::timeout(Duration::from_secs(30), self.worker().run())
            .await
            .expect("worker finished in time")
            .expect("worker ran")
    }

    async fn dispatch(&self, act: Act, tries: u32) -> String {
        self.spool
            .dispatch(act)
            .tries(tries)
            .backoff(Backoff::fixed(Duration::ZERO))
            .await
            .unwrap()
            .id
    }
}

const QUEUEING: [&str; 2] = ["job.queueing", "job.queued"];
const SUCCESS: [&str; 3] = ["job.processing", "job.processed", "job.attempted"];
const RETRY: [&str; 4] = [
    "job.processing",
    "job.exception_occurred",
    "job.released_after_exception",
    "job.attempted",
];
const FINAL_FAILURE: [&str; 4] = [
    "job.processing",
    "job.failed",
    "job.exception_occurred",
    "job.attempted",
];

fn concat(parts: &[&[&'static str]]) -> Vec<&'static str> {
    parts.concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_and_worker_lifecycle() {
    let s = setup().await;
    let mut rx = s.events.subscribe();
    let id = s.dispatch(Act::default(), 3).await;
    let exit = s.work().await;
    assert_eq!(exit.reason, ExitReason::Done);
    assert_eq!(s.log.of(&id), concat(&[&QUEUEING, &SUCCESS]));

    let all = s.log.all();
    assert!(matches!(
        &all[2],
        Event::WorkerStarting { queues, .. } if queues == &["default"]
    ));
    assert!(matches!(
        all.last().unwrap(),
        Event::WorkerStopping {
            reason: ExitReason::Done,
            ..
        }
    ));
    assert!(matches!(
        &all[1],
        Event::JobQueued { status: DispatchStatus::Queued, job } if job.name == "act" && job.queue == "default"
    ));
    let processed = all
        .iter()
        .find(|e| e.name() == "job.processed")
        .expect("processed");
    assert!(matches!(processed, Event::JobProcessed { released: false, job } if job.attempt == 1));

    // The broadcast channel carries the same events.
    let mut received = Vec::new();
    while let Ok(e) = rx.try_recv() {
        received.push(e);
    }
    assert_eq!(received, all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_dispatch_is_one_queueing_then_one_queued() {
    // S-EVT-3, for single, repeated-id and batch dispatches.
    let s = setup().await;
    let first = s.spool.dispatch(Act::default()).id("same").await.unwrap();
    let again = s.spool.dispatch(Act::default()).id("same").await.unwrap();
    assert_eq!(again.status, DispatchStatus::AlreadyQueued);
    assert_eq!(s.log.of(&first.id), [QUEUEING, QUEUEING].concat());
    let statuses: Vec<DispatchStatus> = s
        .log
        .all()
        .iter()
        .filter_map(|e| match e {
            Event::JobQueued { status, .. } => Some(*status),
            _ => None,
        })
        .collect();
    assert_eq!(
        statuses,
        [DispatchStatus::Queued, DispatchStatus::AlreadyQueued]
    );
    let many = s
        .spool
        .dispatch_many([Act::default(), Act::default()])
        .await
        .unwrap();
    for out in &many {
        assert_eq!(s.log.of(&out.id), QUEUEING);
    }
    // Skipped dispatches emit nothing.
    let before = s.log.all().len();
    s.spool.dispatch(Act::default()).when(false).await.unwrap();
    assert_eq!(s.log.all().len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_error_then_success() {
    let s = setup().await;
    let id = s
        .dispatch(
            Act {
                fail_first: 1,
                ..Default::default()
            },
            3,
        )
        .await;
    s.work().await;
    assert_eq!(s.log.of(&id), concat(&[&QUEUEING, &RETRY, &SUCCESS]));
    let all = s.log.all();
    assert!(all.iter().any(|e| matches!(
        e,
        Event::JobExceptionOccurred { job, error } if error == "failure 1" && job.attempt == 1
    )));
    assert!(all.iter().any(|e| matches!(
        e,
        Event::JobReleasedAfterException { delay, .. } if delay.is_zero()
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_failure() {
    let s = setup().await;
    let id = s
        .dispatch(
            Act {
                fail_first: 9,
                ..Default::default()
            },
            2,
        )
        .await;
    let exit = s.work().await;
    assert_eq!(exit.failed, 1);
    assert_eq!(s.log.of(&id), concat(&[&QUEUEING, &RETRY, &FINAL_FAILURE]));
    assert!(s.log.all().iter().any(|e| matches!(
        e,
        Event::JobFailed { job, error } if error == "failure 2" && job.attempt == 2
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_fail_is_processed_not_an_exception() {
    // S-EVT-2: a chosen failure is not an exception; processed fires after failed.
    let s = setup().await;
    let id = s
        .dispatch(
            Act {
                give_up: true,
                ..Default::default()
            },
            3,
        )
        .await;
    s.work().await;
    assert_eq!(
        s.log.of(&id),
        concat(&[
            &QUEUEING,
            &[
                "job.processing",
                "job.failed",
                "job.processed",
                "job.attempted"
            ]
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_by_the_handler_is_processed_with_released_true() {
    // S-EVT-2, and S-RETRY-3's pickup after exhaustion: tries=2, always releasing.
    let s = setup().await;
    let id = s
        .dispatch(
            Act {
                release_first: 9,
                ..Default::default()
            },
            2,
        )
        .await;
    s.work().await;
    let released = [
        "job.processing",
        "job.processed",
        "job.released",
        "job.attempted",
    ];
    assert_eq!(
        s.log.of(&id),
        concat(&[&QUEUEING, &released, &released, &FINAL_FAILURE])
    );
    let flags: Vec<bool> = s
        .log
        .all()
        .iter()
        .filter_map(|e| match e {
            Event::JobProcessed { released, .. } => Some(*released),
            _ => None,
        })
        .collect();
    assert_eq!(flags, [true, true]);
    assert!(s.log.all().iter().any(|e| matches!(
        e,
        Event::JobFailed { error, .. } if error.starts_with("max attempts (2) exceeded")
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferral_is_processed_released_and_deferred() {
    let s = setup().await;
    let id = s
        .dispatch(
            Act {
                defer_first: 1,
                ..Default::default()
            },
            1,
        )
        .await;
    s.work().await;
    assert_eq!(
        s.log.of(&id),
        concat(&[
            &QUEUEING,
            &[
                "job.processing",
                "job.processed",
                "job.deferred",
                "job.attempted"
            ],
            &SUCCESS
        ])
    );
    assert!(s.log.all().iter().any(|e| matches!(
        e,
        Event::JobDeferred { reason, delay, .. } if reason == "rate limited" && *delay == Duration::from_millis(50)
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_is_timed_out_then_handled_as_an_exception() {
    // tries=2, always timing out: a retry, then the final failure.
    let s = setup().await;
    let id = s
        .spool
        .dispatch(Act {
            sleep_ms: 5_000,
            ..Default::default()
        })
        .tries(2)
        .backoff(Backoff::fixed(Duration::ZERO))
        .timeout(Duration::from_millis(200))
        .await
        .unwrap()
        .id;
    s.work().await;
    let timed_out = |rest: &[&'static str]| {
        let mut v = vec!["job.processing", "job.timed_out"];
        v.extend_from_slice(rest);
        v
    };
    assert_eq!(
        s.log.of(&id),
        concat(&[
            &QUEUEING,
            &timed_out(&RETRY[1..]),
            &timed_out(&FINAL_FAILURE[1..])
        ])
    );
    assert!(s.log.all().iter().any(|e| matches!(
        e,
        Event::JobTimedOut { after, .. } if *after == Duration::from_millis(200)
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_veto_idles_the_worker() {
    let s = setup().await;
    let paused = Arc::new(AtomicBool::new(true));
    let flag = paused.clone();
    s.events.looping(move |_| !flag.load(Ordering::SeqCst));
    let id = s.dispatch(Act::default(), 1).await;
    let worker = tokio::spawn(s.worker().run());

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.log.of(&id), QUEUEING, "nothing ran while vetoed");
    let loops = s
        .log
        .all()
        .iter()
        .filter(|e| matches!(e, Event::Looping { .. }))
        .count();
    assert!(loops >= 2, "the worker kept asking: {loops}");

    let resumed = Instant::now();
    paused.store(false, Ordering::SeqCst);
    let exit = tokio::time::timeout(Duration::from_secs(30), worker)
        .await
        .expect("worker finished in time")
        .unwrap()
        .unwrap();
    assert_eq!((exit.reason, exit.completed), (ExitReason::Done, 1));
    assert!(resumed.elapsed() < Duration::from_secs(10));
    assert_eq!(s.log.of(&id), concat(&[&QUEUEING, &SUCCESS]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_failed_emits_retry_requested() {
    let s = setup().await;
    let id = s
        .dispatch(
            Act {
                give_up: true,
                ..Default::default()
            },
            1,
        )
        .await;
    s.work().await;
    let retried = s
        .spool
        .retry_failed(&spool::store::RetrySelector::Ids(vec![id.clone()]))
        .await
        .unwrap();
    assert_eq!(retried, vec![id.clone()]);
    assert!(
        s.log
            .all()
            .contains(&Event::JobRetryRequested { id: id.clone() })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_emit_dispatched_and_cancelled() {
    let s = setup().await;
    let batch = s
        .spool
        .batch("nightly")
        .jobs((0..3).map(|_| Act::default()))
        .unwrap()
        .dispatch()
        .await
        .unwrap();
    assert!(s.spool.cancel_batch(&batch.id).await.unwrap());
    assert!(!s.spool.cancel_batch(&batch.id).await.unwrap(), "only once");
    let batch_events: Vec<Event> = s
        .log
        .all()
        .into_iter()
        .filter(|e| e.name().starts_with("batch."))
        .collect();
    assert_eq!(
        batch_events,
        [
            Event::BatchDispatched {
                id: batch.id.clone(),
                name: "nightly".into(),
                jobs: 3
            },
            Event::BatchCancelled { id: batch.id }
        ]
    );
}
