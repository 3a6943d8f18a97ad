//! Metrics through real workers on every store: a run with known waits and run times, and the
//! percentiles read back from the store are within one histogram bucket of the truth.
#![cfg(feature = "sqlite")]

use std::{
    collections::HashMap,
    sync::{LazyLock, Mutex},
    time::{Duration, Instant},
};

mod support;

use serde::{Deserialize, Serialize};
use spool::{
    Job, JobContext, JobError, JobResult, Registry, Spool, Worker, WorkerConfig,
    metrics::{Histogram, summarize},
};

/// A job's wait (dispatch to start) and run time.
type Seen = (Duration, Duration);

/// What each job saw, per test location.
static SEEN: LazyLock<Mutex<HashMap<String, Vec<Seen>>>> = LazyLock::new(Default::default);

#[derive(Debug, Serialize, Deserialize)]
struct Timed {
    key: String,
    sleep_ms: u64,
    fail: bool,
    /// When it was dispatched, ms since the Unix epoch.
    dispatched_ms: i64,
}

impl Job for Timed {
    const NAME: &'static str = "timed";

    async fn handle(self, _ctx: JobContext) -> JobResult {
        let wait = Duration::from_millis((spool::now_ms() - self.dispatched_ms).max(0) as u64);
        let started = Instant::now();
        tokio::time::sleep(Duration::from_millis(self.sleep_ms)).await;
        SEEN.lock()
            .unwrap()
            .entry(self.key.clone())
            .or_default()
            .push((wait, started.elapsed()));
        if self.fail {
            return Err(JobError::fail("it was told to fail"));
        }
        Ok(())
    }
}

/// The true `q` quantile of `values`, in ms.
fn truth(values: &mut [Duration], q: f64) -> f64 {
    values.sort();
    let rank = ((q * values.len() as f64).ceil() as usize).max(1);
    values[rank - 1].as_secs_f64() * 1000.0
}

fn within_one_bucket(reported: Option<f64>, truth: f64, what: &str) {
    let reported = reported.unwrap_or_else(|| panic!("{what}: nothing reported"));
    let (a, b) = (Histogram::bucket_of(reported), Histogram::bucket_of(truth));
    assert!(
        a.abs_diff(b) <= 1,
        "{what}: reported {reported} ms (bucket {a}), truth {truth} ms (bucket {b})"
    );
}

async fn known_waits_and_run_times_are_reported_within_a_bucket(fresh: &support::Fresh) {
    let store = fresh.connect().await;
    let spool = Spool::new(store.clone());
    let key = format!("{}-{}", fresh.backend, fresh.url);
    // 20 jobs of 1 to 200 ms, and 2 that fail; all wait about 400 ms for the worker.
    for i in 0..22u64 {
        let job = Timed {
            key: key.clone(),
            sleep_ms: if i < 20 { 10 * (i + 1) } else { 5 },
            fail: i >= 20,
            dispatched_ms: spool::now_ms(),
        };
        spool.dispatch(job).on_queue("measured").await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let config = WorkerConfig {
        queues: vec!["measured".into()],
        concurrency: 30,
        until_done: true,
        sleep: Duration::from_millis(20),
        ..WorkerConfig::default()
    };
    let worker = Worker::new(store.clone(), Registry::new().register::<Timed>(), config);
    tokio::time::timeout(Duration::from_secs(60), worker.run())
        .await
        .expect("the worker finishes")
        .expect("the worker runs");

    // The worker wrote its metrics as it stopped.
    let summary = summarize(store.as_ref(), 3_600_000, Some("measured"))
        .await
        .unwrap();
    let queue = &summary.queues[0];
    assert_eq!(queue.name, "measured");
    assert_eq!((queue.enqueued, queue.completed, queue.failed), (22, 20, 2));
    assert!((queue.failure_rate - 2.0 / 22.0).abs() < 1e-9);
    assert_eq!(queue.oldest_ready_age_ms, Some(0));
    assert_eq!(summary.jobs[0].name, "timed");

    let mut seen = SEEN.lock().unwrap().remove(&key).unwrap();
    assert_eq!(seen.len(), 22);
    let mut waits: Vec<Duration> = seen.iter().map(|(w, _)| *w).collect();
    let mut runs: Vec<Duration> = seen.drain(..).map(|(_, r)| r).collect();
    for (q, reported) in [(0.5, queue.wait_ms.p50), (0.95, queue.wait_ms.p95)] {
        within_one_bucket(reported, truth(&mut waits, q), &format!("wait p{q}"));
    }
    for (q, reported) in [
        (0.5, queue.run_ms.p50),
        (0.95, queue.run_ms.p95),
        (0.99, queue.run_ms.p99),
    ] {
        within_one_bucket(reported, truth(&mut runs, q), &format!("run p{q}"));
    }
}

on_every_store!(known_waits_and_run_times_are_reported_within_a_bucket);
