//! Several worker processes on one store: 4 processes share 50,000 jobs. With nothing crashing
//! every job runs exactly once; with one process killed -9 mid-run every job runs at least once
//! and completes exactly once in the store.
//!
//! The worker processes are this test binary started again with `SPOOL_MP_URL` set, running
//! only [`mp_child_worker`]; each appends the numbers of the jobs it ran to a file of its own,
//! one unbuffered write per job, so a killed process loses no record of what it ran.
//!
//! Server stores come from the same variables as the conformance suites; an unreachable
//! server is skipped on a laptop and a failure under `CI=true`.
#![cfg(feature = "sqlite")]

use std::{
    collections::HashMap,
    fs::File,
    io::Write,
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

mod support;

use serde::{Deserialize, Serialize};
use spool::{Job, JobContext, JobResult, Registry, Spool, Store, Worker, WorkerConfig};

const JOBS: u64 = 50_000;
const PROCESSES: usize = 4;
const CONCURRENCY: usize = 16;
/// Short, so a killed process's jobs come back within seconds; not shorter, because a worker
/// that cannot heartbeat for 2/3 of its lease stops (D-1), and a loaded 2-core machine can
/// stall a process for most of a second.
const LEASE: Duration = Duration::from_secs(3);
const LIMIT: Duration = Duration::from_secs(600);

/// The job: records its number in this process's runs file.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    n: u64,
}

static RUNS_FILE: OnceLock<Mutex<File>> = OnceLock::new();

impl Job for Record {
    const NAME: &'static str = "record";

    async fn handle(self, _ctx: JobContext) -> JobResult {
        if let Some(file) = RUNS_FILE.get() {
            let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
            // One write per line with O_APPEND: whole lines even when killed.
            file.write_all(format!("{}\n", self.n).as_bytes())
                .expect("record a run");
        }
        Ok(())
    }
}

/// The worker process. A no-op in a normal test run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mp_child_worker() {
    let (Ok(url), Ok(dir)) = (std::env::var("SPOOL_MP_URL"), std::env::var("SPOOL_MP_DIR")) else {
        return;
    };
    let path = Path::new(&dir).join(format!("runs-{}", std::process::id()));
    let file = File::options()
        .create(true)
        .append(true)
        .open(&path)
        .expect("open the runs file");
    RUNS_FILE.set(Mutex::new(file)).expect("set once");
    let store = spool::connect(&url).await.expect("connect");
    let registry = Registry::new().register::<Record>();
    let config = WorkerConfig {
        concurrency: CONCURRENCY,
        lease: LEASE,
        sleep: Duration::from_millis(100),
        until_done: true,
        ..WorkerConfig::default()
    };
    Worker::new(store, registry, config)
        .run()
        .await
        .expect("worker runs");
}

fn spawn_worker(url: &str, dir: &Path) -> Child {
    Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "mp_child_worker",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SPOOL_MP_URL", url)
        .env("SPOOL_MP_DIR", dir)
        .env("SPOOL_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start a worker process")
}

/// How often each job number ran, over every process's runs file.
fn run_counts(dir: &Path) -> HashMap<u64, u32> {
    let mut counts = HashMap::new();
    for entry in std::fs::read_dir(dir).expect("read the runs dir") {
        let path = entry.expect("dir entry").path();
        if !path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("runs-"))
        {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read a runs file");
        for line in text.lines() {
            let n: u64 = line.trim().parse().expect("a job number");
            *counts.entry(n).or_default() += 1;
        }
    }
    counts
}

fn total_runs(dir: &Path) -> u64 {
    run_counts(dir).values().map(|n| u64::from(*n)).sum()
}

async fn dispatch_all(store: Arc<dyn Store>) {
    let spool = Spool::new(store);
    let mut n = 0;
    while n < JOBS {
        let chunk: Vec<Record> = (n..(n + 1000).min(JOBS)).map(|n| Record { n }).collect();
        n += chunk.len() as u64;
        spool.dispatch_many(chunk).await.expect("dispatch");
    }
}

fn wait_all(children: Vec<Child>) {
    let started = Instant::now();
    for mut child in children {
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                assert!(status.success(), "a worker process failed: {status:?}");
                break;
            }
            assert!(
                started.elapsed() < LIMIT,
                "workers still running after {LIMIT:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Runs the scenario on the store at `url`: 4 processes, optionally killing one mid-run.
async fn scenario(url: &str, kill_one: bool) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = spool::connect(url).await.expect("connect");
    dispatch_all(store.clone()).await;

    let started = Instant::now();
    let mut children: Vec<Child> = (0..PROCESSES)
        .map(|_| spawn_worker(url, dir.path()))
        .collect();
    if kill_one {
        let started = Instant::now();
        while total_runs(dir.path()) < JOBS / 5 {
            assert!(
                started.elapsed() < LIMIT,
                "too slow to reach a fifth of the jobs"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut victim = children.remove(0);
        victim.kill().expect("kill -9");
        victim.wait().expect("reap the killed process");
    }
    wait_all(children);
    let elapsed = started.elapsed();
    eprintln!(
        "{}: {JOBS} jobs by {PROCESSES} processes in {elapsed:.1?} ({:.0} jobs/s, debug build)",
        store.backend(),
        JOBS as f64 / elapsed.as_secs_f64()
    );

    let counts = run_counts(dir.path());
    let missing: Vec<u64> = (0..JOBS).filter(|n| !counts.contains_key(n)).collect();
    assert!(
        missing.is_empty(),
        "{} jobs never ran, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let reruns: u32 = counts.values().map(|n| n - 1).sum();
    if kill_one {
        eprintln!("{}: re-runs after kill -9: {reruns}", store.backend());
        assert!(
            reruns as usize <= 4 * CONCURRENCY,
            "{reruns} re-runs: more than the jobs one process can hold"
        );
    } else {
        assert_eq!(
            reruns, 0,
            "with nothing crashing every job runs exactly once"
        );
    }
    let stats = store.stats().await.expect("stats");
    assert_eq!(
        stats.processed, JOBS,
        "each job completed exactly once in the store"
    );
    assert_eq!(stats.failed, 0);
    let queued: u64 = stats
        .queues
        .iter()
        .map(|q| q.pending + q.delayed + q.reserved)
        .sum();
    assert_eq!(queued, 0);
}

// --- every store ---------------------------------------------------------------------

async fn four_processes(fresh: &support::Fresh) {
    scenario(&fresh.url, false).await;
}

async fn four_processes_one_killed(fresh: &support::Fresh) {
    scenario(&fresh.url, true).await;
}

on_every_store!(four_processes, four_processes_one_killed);
