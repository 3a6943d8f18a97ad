//! Workflows through a real worker: chains, batches, unique jobs, middleware (rate limits,
//! concurrency limits, overlap locks, exception throttling, skips), progress and results.
//! Timing follows D-6: lower bounds exact, upper bounds with wide slack.
#![cfg(feature = "sqlite")]

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock, Mutex},
    time::{Duration, Instant},
};

mod support;

use serde::{Deserialize, Serialize};
use spool::{
    DispatchStatus, Job, JobContext, JobError, JobResult, Registry, Spool, Store, Unique, Worker,
    WorkerConfig,
    middleware::{
        ConcurrencyLimited, Middleware, RateLimited, SkipIf, ThrottleExceptions, WithoutOverlapping,
    },
    store::RetrySelector,
};

/// One handler run: which step, when it started and ended.
#[derive(Debug, Clone)]
struct Run {
    id: String,
    step: String,
    started: Instant,
    ended: Instant,
    payload: serde_json::Value,
    /// What a callback or catch job was told (its envelope's `context`).
    callback: Option<spool::CallbackContext>,
}

static RUNS: LazyLock<Mutex<HashMap<String, Vec<Run>>>> = LazyLock::new(Default::default);
/// `test:step`s that should succeed from now on (a "fixed" provider).
static FIXED: LazyLock<Mutex<Vec<String>>> = LazyLock::new(Default::default);

fn runs(test: &str) -> Vec<Run> {
    RUNS.lock().unwrap().get(test).cloned().unwrap_or_default()
}

fn steps(test: &str) -> Vec<String> {
    let mut runs = runs(test);
    runs.sort_by_key(|r| r.started);
    runs.into_iter().map(|r| r.step).collect()
}

/// What the step does, and which middleware it runs under. Strict, like a real app's job:
/// Spool never adds fields to its payload.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    test: String,
    step: String,
    #[serde(default)]
    sleep_ms: u64,
    #[serde(default)]
    fail: bool,
    #[serde(default)]
    rate: Option<(u32, u64)>,
    #[serde(default)]
    overlap: Option<String>,
    #[serde(default)]
    concurrency: Option<u32>,
    #[serde(default)]
    throttle: Option<(u32, u64)>,
    #[serde(default)]
    skip: bool,
    #[serde(default)]
    report: bool,
    #[serde(default)]
    add_to_batch: u32,
}

fn step(test: &str, name: &str) -> Step {
    Step {
        test: test.into(),
        step: name.into(),
        ..Step::default()
    }
}

impl Job for Step {
    const NAME: &'static str = "step";

    fn options(&self) -> spool::JobOptions {
        spool::JobOptions {
            tries: Some(if self.throttle.is_some() { 20 } else { 1 }),
            backoff: Some(spool::Backoff::fixed(Duration::from_millis(10))),
            ..Default::default()
        }
    }

    fn middleware(&self) -> Vec<Box<dyn Middleware>> {
        let mut stack: Vec<Box<dyn Middleware>> = Vec::new();
        if let Some((n, ms)) = self.rate {
            stack.push(Box::new(RateLimited::new(
                &self.test,
                n,
                Duration::from_millis(ms),
            )));
        }
        if let Some(key) = &self.overlap {
            stack.push(Box::new(
                WithoutOverlapping::new(format!("{}:{key}", self.test))
                    .release_after(Duration::from_millis(30)),
            ));
        }
        if let Some(n) = self.concurrency {
            stack.push(Box::new(
                ConcurrencyLimited::new(&self.test, n).release_after(Duration::from_millis(30)),
            ));
        }
        if let Some((n, ms)) = self.throttle {
            stack.push(Box::new(ThrottleExceptions::new(
                &self.test,
                n,
                Duration::from_millis(ms),
            )));
        }
        if self.skip {
            stack.push(Box::new(SkipIf::new(true)));
        }
        stack
    }

    async fn handle(self, ctx: JobContext) -> JobResult {
        let started = Instant::now();
        if self.report {
            ctx.progress(50, Some("half way".to_string())).await?;
        }
        if self.sleep_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.sleep_ms)).await;
        }
        if self.add_to_batch > 0 {
            let more = (0..self.add_to_batch).map(|i| step(&self.test, &format!("added{i}")));
            ctx.add_to_batch(more).await.map_err(JobError::fail)?;
        }
        let payload = serde_json::to_value(&self).unwrap();
        let run = Run {
            id: ctx.id().to_string(),
            step: self.step.clone(),
            started,
            ended: Instant::now(),
            payload,
            callback: ctx.callback().cloned(),
        };
        RUNS.lock()
            .unwrap()
            .entry(self.test.clone())
            .or_default()
            .push(run);
        if self.report {
            ctx.set_result(&serde_json::json!({"words": 1200}))?;
        }
        let fixed = FIXED
            .lock()
            .unwrap()
            .contains(&format!("{}:{}", self.test, self.step));
        if self.fail && !fixed {
            return Err(JobError::retry(format!("{} failed", self.step)));
        }
        Ok(())
    }
}

async fn open(fresh: &support::Fresh) -> (Spool, Arc<dyn Store>) {
    let store = fresh.connect().await;
    (Spool::new(store.clone()), store)
}

/// Runs are recorded per test and store: the same test runs on every store at once.
/// The test's key in the shared run log: unique per store location (a Redis server and a
/// Redis Cluster are both `redis`).
fn key(fresh: &support::Fresh, test: &str) -> String {
    format!("{}-{}-{test}", fresh.backend, fresh.url)
}

async fn work(store: &Arc<dyn Store>, queues: &[&str], concurrency: usize) {
    let config = WorkerConfig {
        queues: queues.iter().map(|q| q.to_string()).collect(),
        concurrency,
        until_done: true,
        sleep: Duration::from_millis(20),
        ..WorkerConfig::default()
    };
    let registry = Registry::new().register::<Step>();
    tokio::time::timeout(
        Duration::from_secs(60),
        Worker::new(store.clone(), registry, config).run(),
    )
    .await
    .expect("the worker finishes")
    .expect("the worker runs");
}

async fn chain_runs_in_order_and_a_failure_stops_it_and_runs_catch_once(fresh: &support::Fresh) {
    let (spool, store) = open(fresh).await;
    let t = &key(fresh, "chain_order");
    spool
        .chain()
        .then(step(t, "analyse"))
        .unwrap()
        .then(step(t, "estimate"))
        .unwrap()
        .then(step(t, "generate"))
        .unwrap()
        .dispatch()
        .await
        .unwrap();
    work(&store, &["default"], 4).await;
    assert_eq!(steps(t), ["analyse", "estimate", "generate"]);

    let t = &key(fresh, "chain_failure");
    spool
        .chain()
        .then(step(t, "a"))
        .unwrap()
        .then(Step {
            fail: true,
            ..step(t, "b")
        })
        .unwrap()
        .then(step(t, "c"))
        .unwrap()
        .catch(step(t, "caught"))
        .unwrap()
        .dispatch()
        .await
        .unwrap();
    work(&store, &["default"], 4).await;
    assert_eq!(steps(t), ["a", "b", "caught"], "c never runs; catch once");
    let caught = runs(t).into_iter().find(|r| r.step == "caught").unwrap();
    let failed_b = runs(t).into_iter().find(|r| r.step == "b").unwrap();
    let context = caught.callback.expect("the catch job is told what failed");
    assert_eq!(context.failed_job_id.as_deref(), Some(failed_b.id.as_str()));
    assert!(
        context
            .error
            .as_deref()
            .is_some_and(|e| e.contains("b failed")),
        "{context:?}"
    );
    assert!(failed_b.callback.is_none(), "a link is no callback");
    assert!(failed_b.ended <= caught.started);
    assert_eq!(store.stats().await.unwrap().failed, 1, "one failed record");
}

async fn chain_queue_and_delay_apply_to_every_link(fresh: &support::Fresh) {
    let (spool, store) = open(fresh).await;
    let t = &key(fresh, "chain_delay");
    let dispatched = Instant::now();
    spool
        .chain()
        .then(step(t, "first"))
        .unwrap()
        .then(step(t, "second"))
        .unwrap()
        .on_queue("docs")
        .delay(Duration::from_millis(300))
        .dispatch()
        .await
        .unwrap();
    work(&store, &["docs"], 2).await;
    let r = runs(t);
    let (first, second) = (&r[0], &r[1]);
    assert!(first.started - dispatched >= Duration::from_millis(300));
    assert!(second.started - first.ended >= Duration::from_millis(300));
}

async fn batch_counts_fires_callbacks_once_and_retry_batch_fires_then(fresh: &support::Fresh) {
    let (spool, store) = open(fresh).await;
    let t = &key(fresh, "batch_callbacks");
    let batch = spool
        .batch("reports")
        .jobs((0..4).map(|i| step(t, &format!("doc{i}"))))
        .unwrap()
        .job(Step {
            fail: true,
            ..step(t, "flaky")
        })
        .unwrap()
        .allow_failures()
        .then(step(t, "then"))
        .unwrap()
        .catch(step(t, "catch"))
        .unwrap()
        .finally(step(t, "finally"))
        .unwrap()
        .progress(step(t, "progress"))
        .unwrap()
        .dispatch()
        .await
        .unwrap();
    let info = spool.batch_info(&batch.id).await.unwrap().unwrap();
    assert_eq!((info.total, info.pending), (5, 5));
    work(&store, &["default"], 3).await;
    let info = spool.batch_info(&batch.id).await.unwrap().unwrap();
    assert_eq!((info.pending, info.failed, info.progress), (0, 1, 100));
    assert!(info.finished_at.is_some() && info.cancelled_at.is_none());
    let count = |name: &str| steps(t).iter().filter(|s| *s == name).count();
    assert_eq!((count("catch"), count("finally"), count("then")), (1, 1, 0));
    assert_eq!(
        count("progress"),
        5,
        "one progress callback per finished job"
    );
    // A callback knows its batch.
    let finally_ran = runs(t).into_iter().find(|r| r.step == "finally").unwrap();
    assert_eq!(finally_ran.payload["test"], t.as_str());
    assert_eq!(
        finally_ran.callback.and_then(|c| c.batch_id).as_deref(),
        Some(batch.id.as_str())
    );

    FIXED.lock().unwrap().push(format!("{t}:flaky"));
    store
        .retry_failed(&RetrySelector::Batch(batch.id.clone()))
        .await
        .unwrap();
    work(&store, &["default"], 3).await;
    assert_eq!((count("catch"), count("finally"), count("then")), (1, 1, 1));
    assert_eq!(
        count("progress"),
        6,
        "the retried job's success reports progress too"
    );
    let info = spool.batch_info(&batch.id).await.unwrap().unwrap();
    assert_eq!((info.pending, info.failed), (0, 0));
}

async fn cancelled_batch_skips_its_jobs_and_jobs_can_grow_their_batch(fresh: &support::Fresh) {
    let (spool, store) = open(fresh).await;
    let t = &key(fresh, "batch_cancel");
    let batch = spool
        .batch("to cancel")
        .jobs((0..10).map(|i| step(t, &format!("doc{i}"))))
        .unwrap()
        .finally(step(t, "finally"))
        .unwrap()
        .dispatch()
        .await
        .unwrap();
    assert!(spool.cancel_batch(&batch.id).await.unwrap());
    work(&store, &["default"], 4).await;
    assert_eq!(steps(t), ["finally"], "no handler of a cancelled batch ran");
    let info = spool.batch_info(&batch.id).await.unwrap().unwrap();
    assert_eq!(info.pending, 0);

    let t = &key(fresh, "batch_grow");
    let batch = spool
        .batch("loader")
        .job(Step {
            add_to_batch: 3,
            ..step(t, "loader")
        })
        .unwrap()
        .then(step(t, "then"))
        .unwrap()
        .dispatch()
        .await
        .unwrap();
    work(&store, &["default"], 2).await;
    let info = spool.batch_info(&batch.id).await.unwrap().unwrap();
    assert_eq!((info.total, info.pending), (4, 0));
    assert_eq!(steps(t).last().map(String::as_str), Some("then"));
    assert_eq!(steps(t).len(), 5);
}

async fn unique_jobs_refuse_duplicates_until_processed(fresh: &support::Fresh) {
    let (spool, store) = open(fresh).await;
    let t = &key(fresh, "unique");
    let lock = || Unique::new("document:42");
    let first = spool.dispatch(step(t, "one")).unique(lock()).await.unwrap();
    let dup = spool.dispatch(step(t, "two")).unique(lock()).await.unwrap();
    assert_eq!(
        (first.status, dup.status),
        (DispatchStatus::Queued, DispatchStatus::AlreadyQueued)
    );
    assert_eq!(
        dup.id, first.id,
        "a refused duplicate names the job holding the lock"
    );
    assert!(store.job(&dup.id).await.unwrap().is_some());
    work(&store, &["default"], 2).await;
    assert_eq!(steps(t), ["one"]);
    let after = spool
        .dispatch(step(t, "three"))
        .unique(lock())
        .await
        .unwrap();
    assert_eq!(
        after.status,
        DispatchStatus::Queued,
        "the lock went with the job"
    );
}

async fn rate_limit_holds_across_workers_without_using_attempts(fresh: &support::Fresh) {
    let (spool, store) = open(fresh).await;
    let t = &key(fresh, "rate");
    let jobs = (0..12).map(|i| Step {
        rate: Some((4, 500)),
        ..step(t, &format!("call{i}"))
    });
    spool.dispatch_many(jobs).await.unwrap();
    // Two workers share the limit through the store.
    let (a, b) = tokio::join!(work(&store, &["default"], 6), work(&store, &["default"], 6));
    let _ = (a, b);
    let mut starts: Vec<Instant> = runs(t).iter().map(|r| r.started).collect();
    starts.sort();
    assert_eq!(starts.len(), 12, "every job ran once");
    for (i, s) in starts.iter().enumerate() {
        // The store counts acquisitions; handlers start a moment later, so allow a little.
        let in_window = starts[i..]
            .iter()
            .take_while(|x| **x - *s < Duration::from_millis(450))
            .count();
        assert!(in_window <= 4, "{in_window} starts within 450 ms");
    }
    assert_eq!(
        store.stats().await.unwrap().failed,
        0,
        "no attempt was burned"
    );
}

async fn overlap_and_concurrency_limits_hold(fresh: &support::Fresh) {
    let (spool, store) = open(fresh).await;
    let t = &key(fresh, "overlap");
    spool
        .dispatch_many((0..4).map(|i| Step {
            overlap: Some("doc".into()),
            sleep_ms: 80,
            ..step(t, &format!("gen{i}"))
        }))
        .await
        .unwrap();
    work(&store, &["default"], 4).await;
    // The most handlers running at one instant: at each start, those started and not ended.
    let max_at_once = |t: &str| {
        let r = runs(t);
        r.iter()
            .map(|x| {
                r.iter()
                    .filter(|y| y.started <= x.started && x.started < y.ended)
                    .count()
            })
            .max()
            .unwrap_or(0)
    };
    assert_eq!(runs(t).len(), 4);
    assert_eq!(max_at_once(t), 1, "never two at once");

    let t = &key(fresh, "concurrency");
    spool
        .dispatch_many((0..6).map(|i| Step {
            concurrency: Some(2),
            sleep_ms: 80,
            ..step(t, &format!("gen{i}"))
        }))
        .await
        .unwrap();
    work(&store, &["default"], 6).await;
    assert_eq!(runs(t).len(), 6);
    assert!(max_at_once(t) <= 2);
}

async fn throttled_exceptions_cool_down_the_failing_service(fresh: &support::Fresh) {
    let (spool, store) = open(fresh).await;
    let t = &key(fresh, "throttle");
    spool
        .dispatch(Step {
            fail: true,
            throttle: Some((2, 400)),
            ..step(t, "provider")
        })
        .await
        .unwrap();
    let handle = {
        let store = store.clone();
        tokio::spawn(async move { work(&store, &["default"], 1).await })
    };
    tokio::time::sleep(Duration::from_millis(900)).await;
    FIXED.lock().unwrap().push(format!("{t}:provider"));
    handle.await.unwrap();
    let r = runs(t);
    // Two quick failures, then a cool-down of the window before the next call.
    assert!(r.len() >= 3, "{} runs", r.len());
    assert!(
        r[2].started - r[1].ended >= Duration::from_millis(300),
        "cooled down"
    );
}

async fn skip_progress_and_results(fresh: &support::Fresh) {
    let (spool, store) = open(fresh).await;
    let t = &key(fresh, "skip");
    spool
        .dispatch(Step {
            skip: true,
            ..step(t, "skipped")
        })
        .await
        .unwrap();
    let reported = spool
        .dispatch(Step {
            report: true,
            ..step(t, "reported")
        })
        .await
        .unwrap();
    work(&store, &["default"], 2).await;
    assert_eq!(steps(t), ["reported"]);
    assert_eq!(store.stats().await.unwrap().processed, 2);
    let kept = store.job_result(&reported.id).await.unwrap().unwrap();
    assert_eq!(kept.result, Some(serde_json::json!({"words": 1200})));
}

async fn each_schedule_tick_fires_once_across_workers(fresh: &support::Fresh) {
    let (_spool, store) = open(fresh).await;
    let t = &key(fresh, "schedule");
    let every_second = spool::Periodic::new("tick", "* * * * * *", step(t, "tick")).unwrap();
    let worker = |store: Arc<dyn Store>| {
        let config = WorkerConfig {
            max_time: Some(Duration::from_millis(3300)),
            sleep: Duration::from_millis(20),
            schedules: vec![every_second.clone()],
            ..WorkerConfig::default()
        };
        Worker::new(store, Registry::new().register::<Step>(), config).run()
    };
    // Three workers run the same schedule.
    let (a, b, c) = tokio::join!(
        worker(store.clone()),
        worker(store.clone()),
        worker(store.clone())
    );
    for r in [a, b, c] {
        r.unwrap();
    }
    let ticks = runs(t).len();
    assert!(
        (2..=4).contains(&ticks),
        "{ticks} runs in 3.3 s of a 1 s schedule"
    );
    let failed = store.stats().await.unwrap().failed;
    assert_eq!(failed, 0);
    // The workers published the schedule for dashboards, with its last and next runs.
    let published = spool::published_schedules(&*store).await.unwrap();
    let tick = published
        .iter()
        .find(|s| s.name == "tick")
        .unwrap_or_else(|| panic!("the schedule is published: {published:?}"));
    assert_eq!(
        (tick.cron.as_str(), tick.queue.as_str()),
        ("* * * * * *", "default")
    );
    let (last, next) = (tick.last_run_ms.unwrap(), tick.next_run_ms.unwrap());
    assert!(next > last, "the next run {next} follows the last {last}");
}

async fn a_batch_inside_a_chain_holds_the_chain_until_it_is_done(fresh: &support::Fresh) {
    let (spool, store) = open(fresh).await;
    let t = &key(fresh, "chain_batch");
    // X -> batch[2 jobs, one fails, allow failures] -> Y: Y runs after both.
    let batch = spool
        .batch("middle")
        .job(step(t, "b1"))
        .unwrap()
        .job(Step {
            fail: true,
            ..step(t, "b2")
        })
        .unwrap()
        .allow_failures();
    spool
        .chain()
        .then(step(t, "x"))
        .unwrap()
        .then_batch(batch)
        .unwrap()
        .then(step(t, "y"))
        .unwrap()
        .dispatch()
        .await
        .unwrap();
    work(&store, &["default"], 4).await;
    let order = steps(t);
    assert_eq!(order.first().map(String::as_str), Some("x"));
    assert_eq!(order.last().map(String::as_str), Some("y"), "{order:?}");
    assert_eq!(order.len(), 4);

    // Without allow_failures a failure stops the chain and runs its catch job.
    let t = &key(fresh, "chain_batch_stop");
    let batch = spool
        .batch("strict")
        .job(Step {
            fail: true,
            ..step(t, "b1")
        })
        .unwrap();
    spool
        .chain()
        .then_batch(batch)
        .unwrap()
        .then(step(t, "never"))
        .unwrap()
        .catch(step(t, "caught"))
        .unwrap()
        .dispatch()
        .await
        .unwrap();
    work(&store, &["default"], 4).await;
    assert_eq!(steps(t), ["b1", "caught"]);
}

async fn chains_inside_a_batch_count_once_each(fresh: &support::Fresh) {
    let (spool, store) = open(fresh).await;
    let t = &key(fresh, "batch_of_chains");
    let chain_a = spool
        .chain()
        .then(step(t, "a1"))
        .unwrap()
        .then(step(t, "a2"))
        .unwrap()
        .then(step(t, "a3"))
        .unwrap();
    let chain_b = spool
        .chain()
        .then(Step {
            fail: true,
            ..step(t, "b1")
        })
        .unwrap()
        .then(step(t, "b2"))
        .unwrap();
    let batch = spool
        .batch("chains")
        .chain(chain_a)
        .unwrap()
        .chain(chain_b)
        .unwrap()
        .job(step(t, "c"))
        .unwrap()
        .allow_failures()
        .then(step(t, "then"))
        .unwrap()
        .finally(step(t, "finally"))
        .unwrap()
        .progress(step(t, "progress"))
        .unwrap()
        .dispatch()
        .await
        .unwrap();
    assert_eq!(spool.batch_info(&batch.id).await.unwrap().unwrap().total, 3);
    work(&store, &["default"], 4).await;
    let info = spool.batch_info(&batch.id).await.unwrap().unwrap();
    assert_eq!((info.pending, info.failed, info.progress), (0, 1, 100));
    let order = steps(t);
    let count = |name: &str| order.iter().filter(|s| *s == name).count();
    let at = |name: &str| order.iter().position(|s| s == name).unwrap();
    assert!(at("a1") < at("a2") && at("a2") < at("a3"), "{order:?}");
    assert_eq!(count("b2"), 0, "a failed link stops its chain");
    assert_eq!(
        (count("finally"), count("then"), count("progress")),
        (1, 0, 3),
        "{order:?}"
    );
}

async fn workers_prune_finished_batches(fresh: &support::Fresh) {
    let (spool, store) = open(fresh).await;
    let t = &key(fresh, "batch_prune");
    let batch = spool
        .batch("old")
        .job(step(t, "only"))
        .unwrap()
        .dispatch()
        .await
        .unwrap();
    work(&store, &["default"], 1).await;
    let info = spool.batch_info(&batch.id).await.unwrap().unwrap();
    assert!(info.finished_at.is_some());
    // The next worker's first maintenance round prunes it.
    let config = WorkerConfig {
        queues: vec!["default".into()],
        sleep: Duration::from_millis(20),
        batch_retention: Duration::ZERO,
        ..WorkerConfig::default()
    };
    let worker = Worker::new(store.clone(), Registry::new().register::<Step>(), config);
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while spool.batch_info(&batch.id).await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a batch finished longer ago than the retention is pruned by workers"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.signal();
    running.await.unwrap().unwrap();
}

on_every_store!(
    chains_inside_a_batch_count_once_each,
    a_batch_inside_a_chain_holds_the_chain_until_it_is_done,
    chain_runs_in_order_and_a_failure_stops_it_and_runs_catch_once,
    chain_queue_and_delay_apply_to_every_link,
    batch_counts_fires_callbacks_once_and_retry_batch_fires_then,
    cancelled_batch_skips_its_jobs_and_jobs_can_grow_their_batch,
    unique_jobs_refuse_duplicates_until_processed,
    rate_limit_holds_across_workers_without_using_attempts,
    overlap_and_concurrency_limits_hold,
    throttled_exceptions_cool_down_the_failing_service,
    skip_progress_and_results,
    each_schedule_tick_fires_once_across_workers,
    workers_prune_finished_batches,
);
