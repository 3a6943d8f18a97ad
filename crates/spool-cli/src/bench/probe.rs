//! The bench's worker process: runs `bench_probe` jobs, keeps each job's timings in memory,
//! stops after the expected count, and prints what it saw as one JSON line.

use std::{
    process::ExitCode,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use clap::Args;
use serde::{Deserialize, Serialize};

use super::epoch_s;
use crate::CliError;
use spool::{
    Job, JobContext, JobResult, Registry, Store, Worker, WorkerConfig, worker::ShutdownHandle,
};

pub(crate) const QUEUE: &str = "bench";

/// The bench job: `n < 0` marks a warm-up job; `t` is the enqueue time (epoch seconds).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Probe {
    pub(crate) n: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) t: Option<f64>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) sleep_ms: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What the worker process reports.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Report {
    pub(crate) count: u64,
    pub(crate) first_start: f64,
    pub(crate) last_end: f64,
    pub(crate) latencies_ms: Vec<f64>,
    /// Peak resident memory of the worker process (Linux `VmHWM`), MB.
    #[serde(default)]
    pub(crate) max_rss_mb: Option<f64>,
}

/// Peak resident set size of this process, where the OS reports it.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

struct Recorder {
    report: Mutex<Report>,
    expect: u64,
    shutdown: ShutdownHandle,
}

// The job type carries no state, so the process-wide recorder lives here (bench only).
static RECORDER: OnceLock<Recorder> = OnceLock::new();

impl Job for Probe {
    const NAME: &'static str = "bench_probe";

    async fn handle(self, _ctx: JobContext) -> JobResult {
        let start = epoch_s();
        if self.sleep_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.sleep_ms)).await;
        }
        let end = epoch_s();
        if let Some(rec) = RECORDER.get() {
            let mut r = rec.report.lock().unwrap_or_else(|p| p.into_inner());
            r.count += 1;
            if self.n >= 0 {
                if r.first_start == 0.0 || start < r.first_start {
                    r.first_start = start;
                }
                r.last_end = r.last_end.max(end);
                if let Some(t) = self.t {
                    r.latencies_ms.push((start - t) * 1000.0);
                }
            }
            if r.count >= rec.expect {
                rec.shutdown.request(spool::worker::Shutdown::Graceful);
            }
        }
        Ok(())
    }
}

#[derive(Debug, Args)]
pub(crate) struct BenchWorkerArgs {
    /// Jobs run at once.
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// Stop after this many jobs.
    #[arg(long)]
    expect: u64,
}

pub(crate) async fn run_worker(
    store: Arc<dyn Store>,
    a: BenchWorkerArgs,
) -> Result<ExitCode, CliError> {
    let config = WorkerConfig {
        queues: vec![QUEUE.into()],
        concurrency: a.concurrency,
        ..WorkerConfig::default()
    };
    let worker = Worker::new(store, Registry::new().register::<Probe>(), config);
    let recorder = Recorder {
        report: Mutex::default(),
        expect: a.expect,
        shutdown: worker.shutdown_handle(),
    };
    if RECORDER.set(recorder).is_err() {
        return Err(CliError::Usage("bench-worker runs once per process".into()));
    }
    println!("ready");
    worker.run().await?;
    let rec = RECORDER.get().expect("set above");
    let mut report = rec.report.lock().unwrap_or_else(|p| p.into_inner());
    report.max_rss_mb = peak_rss_mb();
    println!("{}", serde_json::to_string(&*report).expect("plain data"));
    Ok(ExitCode::SUCCESS)
}
