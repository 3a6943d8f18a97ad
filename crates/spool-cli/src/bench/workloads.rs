//! The three workloads, measured as the peer lab measures them (see its README).

use spool::store::Claim;
use spool::store::QueueStore;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, ChildStdout, Command},
};

use super::{
    Workload, epoch_s,
    probe::{Probe, QUEUE, Report},
    scratch::Scratch,
};
use crate::CliError;
use spool::{
    Envelope, Store,
    store::{NewJob, Settlement, WorkerInfo},
};

const CHUNK: usize = 1000;
const WARMUP: usize = 20;

pub(crate) struct Spec {
    pub(crate) workload: Workload,
    pub(crate) jobs: usize,
    pub(crate) concurrency: usize,
    pub(crate) job_ms: u64,
    pub(crate) run: usize,
}

fn probe_job(probe: &Probe) -> NewJob {
    let payload = serde_json::to_value(probe).expect("plain data");
    NewJob::new(
        &Envelope::new("bench_probe", QUEUE, payload),
        Duration::ZERO,
    )
    .expect("encodes")
}

fn head(peer: &str, scratch: &Scratch, spec: &Spec) -> serde_json::Map<String, Value> {
    let workload = match spec.workload {
        Workload::W1 => "W1",
        Workload::W2 => "W2",
        Workload::W3 => "W3",
        Workload::Dashboard => "dashboard",
        Workload::Llm => "LLM",
    };
    let mut m = serde_json::Map::new();
    m.insert("peer".into(), json!(peer));
    m.insert("backend".into(), json!(scratch.backend));
    m.insert("workload".into(), json!(workload));
    m.insert("run".into(), json!(spec.run));
    m.insert("n".into(), json!(spec.jobs));
    m.insert("concurrency".into(), json!(spec.concurrency));
    m
}

/// W1's figures, as the peer lab computes them.
fn throughput(
    out: &mut serde_json::Map<String, Value>,
    jobs: usize,
    enqueue_s: f64,
    process_s: f64,
) {
    let n = jobs as f64;
    out.insert("enqueue_jobs_per_s".into(), json!(round(n / enqueue_s, 0)));
    out.insert("process_jobs_per_s".into(), json!(round(n / process_s, 0)));
    out.insert(
        "e2e_jobs_per_s".into(),
        json!(round(n / (enqueue_s + process_s), 0)),
    );
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

/// W1's backlog: `n` no-op probes pushed in 1,000-job batches; returns the seconds it took.
async fn push_noops(store: &dyn QueueStore, n: usize) -> Result<f64, CliError> {
    let jobs: Vec<NewJob> = (0..n)
        .map(|n| {
            probe_job(&Probe {
                n: n as i64,
                t: None,
                sleep_ms: 0,
            })
        })
        .collect();
    push_bulk(store, &jobs).await
}

/// Pushes `jobs` in 1,000-job batches; returns the seconds it took.
async fn push_bulk(store: &dyn QueueStore, jobs: &[NewJob]) -> Result<f64, CliError> {
    let t0 = epoch_s();
    for chunk in jobs.chunks(CHUNK) {
        store.push(chunk).await?;
    }
    Ok(epoch_s() - t0)
}

pub(crate) async fn measure(scratch: &Scratch, spec: &Spec) -> Result<Value, CliError> {
    let store = scratch.store.as_ref();
    let mut out = head("spool", scratch, spec);
    match spec.workload {
        Workload::W1 => {
            let enqueue_s = push_noops(store, spec.jobs).await?;
            let child = spawn_worker(&scratch.url, spec.concurrency, spec.jobs).await?;
            let report = finish(child).await?;
            let process_s = report.last_end - report.first_start;
            throughput(&mut out, spec.jobs, enqueue_s, process_s);
        }
        Workload::W2 => {
            let child = spawn_worker(&scratch.url, spec.concurrency, WARMUP + spec.jobs).await?;
            warm_up(store).await?;
            for n in 0..spec.jobs {
                let t = epoch_s();
                store
                    .push(&[probe_job(&Probe {
                        n: n as i64,
                        t: Some(t),
                        sleep_ms: 0,
                    })])
                    .await?;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let mut report = finish(child).await?;
            report.latencies_ms.sort_by(f64::total_cmp);
            let l = &report.latencies_ms;
            out.insert("p50_ms".into(), json!(round(percentile(l, 50.0), 3)));
            out.insert("p95_ms".into(), json!(round(percentile(l, 95.0), 3)));
            out.insert("p99_ms".into(), json!(round(percentile(l, 99.0), 3)));
            out.insert(
                "max_ms".into(),
                json!(round(l.last().copied().unwrap_or(0.0), 3)),
            );
        }
        Workload::W3 => {
            let child = spawn_worker(&scratch.url, spec.concurrency, WARMUP + spec.jobs).await?;
            warm_up(store).await?;
            let jobs: Vec<NewJob> = (0..spec.jobs)
                .map(|n| {
                    probe_job(&Probe {
                        n: n as i64,
                        t: None,
                        sleep_ms: spec.job_ms,
                    })
                })
                .collect();
            let t0 = epoch_s();
            push_bulk(store, &jobs).await?;
            let report = finish(child).await?;
            let wall = report.last_end - t0;
            let job_s = spec.job_ms as f64 / 1000.0;
            let ideal = (spec.jobs as f64 / spec.concurrency as f64).ceil() * job_s;
            out.insert("wall_s".into(), json!(round(wall, 3)));
            out.insert("efficiency".into(), json!(round(ideal / wall, 3)));
            if let Some(rss) = report.max_rss_mb {
                out.insert("worker_max_rss_mb".into(), json!(round(rss, 1)));
            }
        }
        // Measured by `dashboard::measure`, never here.
        // Measured by their own modules.
        Workload::Dashboard | Workload::Llm => {}
    }
    Ok(Value::Object(out))
}

/// W1 without the worker: one task claims 1,000 jobs and deletes them, straight on the store.
/// The floor Spool's worker adds its cost to.
pub(crate) async fn baseline(scratch: &Scratch, spec: &Spec) -> Result<Value, CliError> {
    let store = scratch.store.as_ref();
    let enqueue_s = push_noops(store, spec.jobs).await?;
    let worker = WorkerInfo {
        id: "baseline".into(),
        host: "bench".into(),
        pid: std::process::id(),
        queues: vec![QUEUE.into()],
    };
    store
        .register_worker(&worker, Duration::from_secs(60))
        .await?;
    let queues = [QUEUE.to_string()];
    let t0 = epoch_s();
    loop {
        let got = store
            .reserve(Claim::new(&worker.id, &queues, CHUNK))
            .await?;
        if got.is_empty() {
            break;
        }
        let done: Vec<Settlement> = got
            .into_iter()
            .map(|j| Settlement::complete(j.id, j.token))
            .collect();
        store.settle(&worker.id, &done).await?;
    }
    let process_s = epoch_s() - t0;
    store.deregister_worker(&worker.id).await?;
    let mut out = head(
        "spool-baseline",
        scratch,
        &Spec {
            concurrency: 1,
            ..*spec
        },
    );
    throughput(&mut out, spec.jobs, enqueue_s, process_s);
    Ok(Value::Object(out))
}

/// Linear-interpolated percentile of sorted values (the lab's definition).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = p / 100.0 * (sorted.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

/// Pushes the warm-up jobs and waits until the worker has taken them all.
async fn warm_up(store: &dyn Store) -> Result<(), CliError> {
    let jobs: Vec<NewJob> = (0..WARMUP)
        .map(|_| {
            probe_job(&Probe {
                n: -1,
                t: None,
                sleep_ms: 0,
            })
        })
        .collect();
    store.push(&jobs).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let stats = store.stats().await?;
        let left: u64 = stats
            .queues
            .iter()
            .filter(|q| q.name == QUEUE)
            .map(|q| q.pending + q.reserved)
            .sum();
        if left == 0 {
            // Let the worker settle into its idle wait.
            tokio::time::sleep(Duration::from_millis(200)).await;
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(CliError::Usage(
                "the bench worker did not take the warm-up jobs within 60s".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The bench worker process and its stdout.
struct BenchWorker {
    child: Child,
    lines: tokio::io::Lines<BufReader<ChildStdout>>,
}

/// Starts `bench-worker` in its own process and waits for its "ready" line.
async fn spawn_worker(
    url: &str,
    concurrency: usize,
    expect: usize,
) -> Result<BenchWorker, CliError> {
    // The URL goes through the environment, not the argument list, which any local user can
    // read (`ps`), password included.
    let mut child = Command::new(std::env::current_exe()?)
        .env("SPOOL_URL", url)
        .args([
            "bench-worker",
            "--concurrency",
            &concurrency.to_string(),
            "--expect",
            &expect.to_string(),
        ])
        .env("SPOOL_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    match lines.next_line().await? {
        Some(line) if line == "ready" => Ok(BenchWorker { child, lines }),
        other => Err(CliError::Usage(format!(
            "the bench worker did not start: {other:?}"
        ))),
    }
}

/// Waits (at most 10 minutes) for the worker to finish and reads its report.
async fn finish(worker: BenchWorker) -> Result<Report, CliError> {
    let BenchWorker {
        mut child,
        mut lines,
    } = worker;
    let read = async {
        let mut last = None;
        while let Some(line) = lines.next_line().await? {
            last = Some(line);
        }
        Ok::<_, std::io::Error>(last)
    };
    let last = match tokio::time::timeout(Duration::from_secs(600), read).await {
        Ok(last) => last?,
        Err(_) => {
            let _ = child.kill().await;
            return Err(CliError::Usage(
                "the bench worker did not finish within 10 minutes".into(),
            ));
        }
    };
    let status = child.wait().await?;
    let last = last
        .ok_or_else(|| CliError::Usage(format!("the bench worker printed no report ({status})")))?;
    serde_json::from_str(&last)
        .map_err(|e| CliError::Usage(format!("bad bench worker report `{last}`: {e}")))
}
