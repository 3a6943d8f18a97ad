//! `spool bench`: the peer lab's workloads (W1 throughput, W2 latency, W3 I/O concurrency) on a
//! scratch store, one JSON line per run with the lab's keys.
//!
//! The worker runs in a separate process (`spool bench-worker`, hidden), as the peers' workers
//! do: it records each job's start and end in memory and reports them when it exits, so the
//! measurement adds no I/O to the jobs.

use std::{process::ExitCode, time::Duration};

use clap::{Args, ValueEnum};

use super::CliError;

mod dashboard;
#[cfg(feature = "llm")]
mod llm;
mod probe;
mod scratch;
#[cfg(feature = "postgres")]
mod seed_pg;
mod workloads;

pub(crate) use probe::{BenchWorkerArgs, run_worker};

/// The workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Workload {
    /// Push N no-op jobs in bulk, then process them all.
    W1,
    /// An idle worker; 2,000 single pushes 2 ms apart; enqueue-to-start latency.
    W2,
    /// 1,000 jobs sleeping 100 ms at concurrency 50; wall time against the ideal.
    W3,
    /// A store seeded with N jobs (half pending, a quarter delayed, a quarter failed) and N/4
    /// completed jobs' records, 1 % tagged; every dashboard API call timed (default N
    /// 100,000).
    Dashboard,
    /// The seeds' LLM workload against `spool mock-llm` (`--scenario seed|binding|resume|chaos`).
    Llm,
}

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Which workload.
    #[arg(long, value_enum, ignore_case = true, default_value = "w1")]
    workload: Workload,
    /// Jobs per run (default: W1 100,000; W2 2,000; W3 1,000).
    #[arg(long)]
    jobs: Option<usize>,
    /// Worker concurrency.
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// Runs.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Print JSON lines (one object per run).
    #[arg(long)]
    json: bool,
    /// W3 only: how long each job sleeps, ms.
    #[arg(long, default_value_t = 100)]
    job_ms: u64,
    /// W1 only: also run the bare single-task baseline (1,000-job claim and delete batches
    /// straight on the store, no worker), reported as peer `spool-baseline`.
    #[arg(long)]
    baseline: bool,
    /// LLM only: which scenario (`seed`, `binding`, `resume`, `chaos`; default all).
    #[cfg(feature = "llm")]
    #[arg(long)]
    scenario: Option<String>,
}

pub(crate) async fn run(url: Option<String>, a: BenchArgs) -> Result<ExitCode, CliError> {
    for run in 1..=a.runs {
        if a.workload == Workload::Llm {
            #[cfg(feature = "llm")]
            for line in llm::measure(url.as_deref(), a.scenario.as_deref(), run).await? {
                print(&line, a.json);
            }
            #[cfg(not(feature = "llm"))]
            return Err(CliError::Usage("this build has no llm feature".into()));
            #[cfg(feature = "llm")]
            continue;
        }
        if a.workload == Workload::Dashboard {
            let scratch = scratch::Scratch::new(url.as_deref(), run).await?;
            let jobs = a.jobs.unwrap_or(100_000);
            print(&dashboard::measure(&scratch, jobs, run).await?, a.json);
            continue;
        }
        let spec = workloads::Spec {
            workload: a.workload,
            jobs: a.jobs.unwrap_or(match a.workload {
                Workload::W1 => 100_000,
                Workload::W2 => 2_000,
                Workload::W3 | Workload::Dashboard | Workload::Llm => 1_000,
            }),
            concurrency: a.concurrency,
            job_ms: a.job_ms,
            run,
        };
        let scratch = scratch::Scratch::new(url.as_deref(), run).await?;
        let result = workloads::measure(&scratch, &spec).await?;
        print(&result, a.json);
        if a.baseline && a.workload == Workload::W1 {
            let scratch = scratch::Scratch::new(url.as_deref(), run).await?;
            let result = workloads::baseline(&scratch, &spec).await?;
            print(&result, a.json);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print(result: &serde_json::Value, json: bool) {
    if json {
        println!("{result}");
        return;
    }
    let get = |k: &str| result.get(k).map(|v| v.to_string()).unwrap_or_default();
    let mut line = format!(
        "{} {} {} run {}:",
        get("peer"),
        get("backend"),
        get("workload"),
        get("run")
    );
    if let Some(fields) = result.as_object() {
        for (k, v) in fields {
            if !matches!(k.as_str(), "peer" | "backend" | "workload" | "run") {
                line.push_str(&format!(" {k}={v}"));
            }
        }
    }
    println!("{}", line.replace('"', ""));
}

/// Epoch time in seconds with microseconds, as the peer lab records it.
pub(crate) fn epoch_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}
