//! The dashboard's workload: a store seeded in bulk with a fixed mix (half pending, a quarter
//! delayed, a quarter failed, over five queues) and as many completed jobs' records again as
//! failed ones; one job in 100 tagged `t-0` .. `t-49`, one in 10,000 named `report`. Then every
//! dashboard API call the pages make (searches by tag and by a rare job name included) timed
//! over HTTP on an idle store, 20 times each after 2 warm-ups: p50, p95 and max in ms; and what
//! one refresh of the dashboard's counts snapshot costs.

use std::{net::SocketAddr, time::Duration};

use serde_json::{Value, json};
use spool::{
    Envelope, Store,
    store::{Claim, FailedFilter, NewJob, Settlement, WorkerInfo},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{epoch_s, scratch::Scratch};
use crate::CliError;

const QUEUES: [&str; 5] = ["mail", "pdf", "sync", "llm", "default"];
const CHUNK: usize = 1000;
/// PostgreSQL's seeding batch: records written in bulk, pushes of 10,000 jobs.
#[cfg(feature = "postgres")]
const BULK: usize = 10_000;
const TIMED: usize = 20;

/// The calls the pages make; `{id}` is a pending job's id.
const CALLS: [(&str, &str); 16] = [
    ("overview_hour", "/api/overview?span=hour"),
    ("overview_week", "/api/overview?span=week"),
    ("queues", "/api/queues"),
    ("jobs_pending", "/api/jobs?state=pending"),
    ("jobs_delayed", "/api/jobs?state=delayed&queue=pdf"),
    ("jobs_failed", "/api/jobs?state=failed"),
    ("jobs_completed", "/api/jobs?state=completed"),
    ("completed_by_tag", "/api/jobs?state=completed&tag=t-7"),
    ("completed_by_job", "/api/jobs?state=completed&job=report"),
    ("pending_by_tag", "/api/jobs?state=pending&tag=t-7"),
    ("pending_by_job", "/api/jobs?state=pending&job=report"),
    ("job", "/api/jobs/{id}"),
    ("batches", "/api/batches"),
    ("workers", "/api/workers"),
    ("metrics", "/metrics"),
    ("page", "/"),
];

pub(crate) async fn measure(scratch: &Scratch, jobs: usize, run: usize) -> Result<Value, CliError> {
    let store = &scratch.store;
    let t0 = epoch_s();
    let some_id = seed(store.as_ref(), jobs, scratch.postgres_url.as_deref()).await?;
    let seed_s = epoch_s() - t0;

    let router = spool_dashboard::Dashboard::new(store.clone()).router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let mut calls = serde_json::Map::new();
    for (name, path) in CALLS {
        let path = path.replace("{id}", &some_id);
        for _ in 0..2 {
            get(addr, &path).await?;
        }
        let mut times = Vec::with_capacity(TIMED);
        for _ in 0..TIMED {
            let t = epoch_s();
            get(addr, &path).await?;
            times.push((epoch_s() - t) * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        let at = |q: f64| times[((q * TIMED as f64).ceil() as usize).clamp(1, TIMED) - 1];
        calls.insert(
            name.into(),
            json!({"p50_ms": round(at(0.5)), "p95_ms": round(at(0.95)), "max_ms": round(at(1.0))}),
        );
    }
    server.abort();
    // What refreshing the dashboard's counts snapshot costs (at most once a second, whatever
    // the traffic): the store's stats and each queue's failed count.
    let mut reads = Vec::new();
    for _ in 0..5 {
        let t = epoch_s();
        let stats = store.stats().await?;
        for q in &stats.queues {
            let filter = FailedFilter {
                queue: Some(q.name.clone()),
                limit: Some(1),
            };
            store.failed_jobs(&filter).await?;
        }
        reads.push((epoch_s() - t) * 1000.0);
    }
    reads.sort_by(f64::total_cmp);
    Ok(json!({
        "peer": "spool", "backend": scratch.backend, "workload": "dashboard", "run": run,
        "n": jobs, "seed_s": round(seed_s), "calls": calls,
        "counts_refresh_ms": {"p50_ms": round(reads[2]), "max_ms": round(reads[4])},
    }))
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Seeds `n` jobs: a quarter failed and as many completed (pushed, claimed and settled in
/// 1,000-job batches; on PostgreSQL, whose `postgres_url` is given, their records written in
/// bulk: [`super::seed_pg`]), then half pending and a quarter delayed by an hour. Returns a
/// pending job's id.
async fn seed(store: &dyn Store, n: usize, postgres_url: Option<&str>) -> Result<String, CliError> {
    let failing = n / 4;
    #[cfg(feature = "postgres")]
    if let Some(url) = postgres_url {
        let mut records = super::seed_pg::Records::connect(url, super::scratch::PG_SCHEMA).await?;
        let mut done = 0;
        while done < failing {
            let batch: Vec<NewJob> = (done..(done + BULK).min(failing))
                .map(|i| job(i, Duration::ZERO))
                .collect();
            records.failed(&batch).await?;
            done += batch.len();
        }
        done = 0;
        while done < failing {
            let batch: Vec<NewJob> = (done..(done + BULK).min(failing))
                .map(|i| job(n + i, Duration::ZERO))
                .collect();
            records.completed(&batch).await?;
            done += batch.len();
        }
        records.finish().await?;
        return push_waiting(store, n, failing, BULK).await;
    }
    #[cfg(not(feature = "postgres"))]
    let _ = postgres_url;
    let worker = WorkerInfo {
        id: format!("bench-seed-{}", std::process::id()),
        host: "bench".into(),
        pid: std::process::id(),
        queues: QUEUES.iter().map(|q| q.to_string()).collect(),
    };
    store
        .register_worker(&worker, Duration::from_secs(3600))
        .await?;
    let mut done = 0;
    while done < failing {
        let batch: Vec<NewJob> = (done..(done + CHUNK).min(failing))
            .map(|i| job(i, Duration::ZERO))
            .collect();
        store.push(&batch).await?;
        let claimed = store
            .reserve(Claim::new(&worker.id, &worker.queues, batch.len()))
            .await?;
        let fails: Vec<Settlement> = claimed
            .iter()
            .map(|j| Settlement::fail(&j.id, j.token, "seeded failure".into(), vec![]))
            .collect();
        store.settle(&worker.id, &fails).await?;
        done += batch.len();
    }
    // As many completed jobs, kept as the history's short records.
    done = 0;
    while done < failing {
        let batch: Vec<NewJob> = (done..(done + CHUNK).min(failing))
            .map(|i| job(n + i, Duration::ZERO))
            .collect();
        store.push(&batch).await?;
        let claimed = store
            .reserve(Claim::new(&worker.id, &worker.queues, batch.len()))
            .await?;
        let completions: Vec<Settlement> = claimed
            .iter()
            .map(|j| Settlement::complete(&j.id, j.token))
            .collect();
        store.settle(&worker.id, &completions).await?;
        done += batch.len();
    }
    store.deregister_worker(&worker.id).await?;
    push_waiting(store, n, failing, CHUNK).await
}

/// The seeded job `i`: on one of five queues, named `report` once in 10,000, tagged once in
/// 100.
fn job(i: usize, delay: Duration) -> NewJob {
    let queue = QUEUES[i % QUEUES.len()];
    let payload = json!({"document": i, "customer": format!("c-{}", i % 997)});
    let name = if i % 10_000 == 5_000 {
        "report"
    } else {
        "noop"
    };
    let mut envelope = Envelope::new(name, queue, payload);
    if i.is_multiple_of(100) {
        envelope.tags = vec![format!("t-{}", (i / 100) % 50)];
    }
    NewJob::new(&envelope, delay).expect("encodes")
}

/// Pushes the `n - failing` waiting jobs in batches of `chunk`, one in three delayed by an hour;
/// returns the first one's id.
async fn push_waiting(
    store: &dyn Store,
    n: usize,
    failing: usize,
    chunk: usize,
) -> Result<String, CliError> {
    let mut some_id = String::new();
    let rest = n - failing;
    let mut i = 0;
    while i < rest {
        let batch: Vec<NewJob> = (i..(i + chunk).min(rest))
            .map(|k| {
                let delay = if k % 3 == 2 {
                    Duration::from_secs(3600)
                } else {
                    Duration::ZERO
                };
                job(failing + k, delay)
            })
            .collect();
        if some_id.is_empty() {
            some_id = batch[0].id.clone();
        }
        store.push(&batch).await?;
        i += batch.len();
    }
    Ok(some_id)
}

/// One GET over HTTP/1.0, the body read to the end; an answer other than 200 is an error.
async fn get(addr: SocketAddr, path: &str) -> Result<(), CliError> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    if !response.starts_with(b"HTTP/1.0 200") && !response.starts_with(b"HTTP/1.1 200") {
        let head = String::from_utf8_lossy(&response[..response.len().min(200)]).to_string();
        return Err(CliError::Usage(format!("GET {path} answered: {head}")));
    }
    Ok(())
}
