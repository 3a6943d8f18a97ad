//! `spool bench --workload llm`: the seeds' LLM workload against `spool mock-llm`, with time
//! scaled by 1/100 (a 45 s model call takes 450 ms; limits are 100× the seed's, so 60 RPM is
//! 6,000). Scenarios:
//!
//! - `seed`: seed 000's table, 3 and 10 documents on 1, 3, 5 and 20 worker processes; wall
//!   time against the ideal (`ceil(n / workers)` calls of 450 ms).
//! - `binding`: 1,000 calls of varied sizes on 4 processes under a requests and a tokens
//!   limit; achieved rate against the binding limit, 429s, makespan against the minimum the
//!   limits allow.
//! - `resume`: 429s with a 1 s wait injected while 4 processes work; requests before the
//!   named instant (early) and how long after it the first one arrived (resume lag).
//! - `chaos`: a 500-document two-step pipeline while a random worker is killed with SIGKILL
//!   every 2 s; documents lost and recorded calls paid again.

mod rig;

use std::time::Duration;

use serde_json::{Value, json};
use spool::{
    Spool,
    llm::{Llm, LlmJob},
};

use super::scratch::Scratch;
use crate::CliError;
use rig::{QUEUE, Rig, Setup, at};

/// The seed's model call, scaled: 45 s → 450 ms.
const SEED_LATENCY_MS: u64 = 450;

/// The scenarios, in the order `--scenario all` runs them.
pub(crate) const SCENARIOS: [&str; 4] = ["seed", "binding", "resume", "chaos"];

/// Runs `scenario` (or all) once; one JSON object per measurement.
pub(crate) async fn measure(
    url: Option<&str>,
    scenario: Option<&str>,
    run: usize,
) -> Result<Vec<Value>, CliError> {
    let mut out = Vec::new();
    for name in SCENARIOS {
        if scenario.is_some_and(|s| s != name && s != "all") {
            continue;
        }
        match name {
            "seed" => {
                for n in [3, 10] {
                    for workers in [1, 3, 5, 20] {
                        // One size that cannot run (a server's connection limit) is reported
                        // in its line; the others are still measured.
                        out.push(seed(url, run, n, workers).await.unwrap_or_else(|e| {
                            json!({
                                "peer": "spool", "workload": "LLM", "run": run,
                                "scenario": "seed", "n": n, "workers": workers,
                                "error": e.to_string(),
                            })
                        }));
                    }
                }
            }
            "binding" => out.push(binding(url, run).await?),
            "resume" => out.push(resume(url, run).await?),
            _ => out.push(chaos(url, run).await?),
        }
    }
    if out.is_empty() {
        return Err(CliError::Usage(format!(
            "--scenario takes {} or all",
            SCENARIOS.join(", ")
        )));
    }
    Ok(out)
}

/// A chat request of `prompt_chars` characters asking for at most `max_tokens`.
fn request(tag: &str, prompt_chars: usize, max_tokens: u64) -> LlmJob {
    let mut text = format!("{tag}: ");
    while text.len() < prompt_chars {
        text.push_str("please write a careful paragraph about queues. ");
    }
    text.truncate(prompt_chars.max(tag.len() + 2));
    let request = json!({
        "provider": "mock",
        "model": "gpt-test",
        "messages": [{"role": "user", "content": text}],
        "max_tokens": max_tokens,
    });
    serde_json::from_value(request).expect("an object")
}

/// The line every scenario prints, with its figures.
fn line(scratch: &Scratch, run: usize, scenario: &str, figures: Value) -> Value {
    let mut out = json!({
        "peer": "spool",
        "backend": scratch.backend,
        "workload": "LLM",
        "run": run,
        "scenario": scenario,
        "resume_lag_p99_ms": null,
        "early_requests": 0,
        "paid_twice": 0,
    });
    for (k, v) in figures.as_object().into_iter().flatten() {
        out[k] = v.clone();
    }
    out
}

/// Requests answered 429, and the jobs that failed (each worker allows one try, so a 429
/// that used a try fails its job).
fn limited(requests: &[Value]) -> usize {
    requests.iter().filter(|r| r["status"] == 429).count()
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Dispatches every job in one round trip, so workers see them together.
async fn dispatch(spool: &Spool, jobs: Vec<LlmJob>) -> Result<(), CliError> {
    spool.dispatch_many(jobs).await?;
    Ok(())
}

/// Seed 000's table: `n` documents, one 450 ms call each, on `workers` processes of one job,
/// after one warm-up call per process (connections and statements ready, as in a running
/// deployment).
async fn seed(url: Option<&str>, run: usize, n: usize, workers: usize) -> Result<Value, CliError> {
    let setup = Setup {
        latency: "450ms",
        rpm: 6_000,
        tpm: None,
        workers,
        concurrency: 1,
    };
    let rig = Rig::start(url, run, &setup).await?;
    let store = rig.scratch.store.clone();
    let warm = workers as u64;
    let warm_up = (0..warm).map(|i| request(&format!("warm-up {i}"), 50, 10));
    dispatch(&rig.spool, warm_up.collect()).await?;
    rig::wait_done(&*store, warm, Duration::from_secs(120)).await?;
    let warmed = rig.mock.requests().len();
    let started = std::time::Instant::now();
    let started_ms = spool::now_ms() as f64;
    let documents = (0..n).map(|i| request(&format!("document {i}"), 400, 200));
    dispatch(&rig.spool, documents.collect()).await?;
    let (_, failed) = rig::wait_done(&*store, warm + n as u64, Duration::from_secs(120)).await?;
    let wall = started.elapsed().as_secs_f64();
    let (scratch, mut requests) = rig.finish().await;
    let requests = requests.split_off(warmed.min(requests.len()));
    let ideal = n.div_ceil(workers) as f64 * SEED_LATENCY_MS as f64 / 1000.0;
    // When the calls reached the provider, after the dispatch: the rest of the wall time is
    // the model's latency and the completion being written and seen.
    let sent: Vec<f64> = requests.iter().map(|r| at(r) - started_ms).collect();
    let sent_ms = |pick: fn(f64, f64) -> f64| sent.iter().copied().reduce(pick).map(round);
    Ok(line(
        &scratch,
        run,
        "seed",
        json!({
            "workers": workers, "concurrency": 1, "n": n,
            "wall_s": round(wall), "ideal_s": round(ideal), "ratio": round(wall / ideal),
            "achieved_rpm": null, "limit_rpm": setup.rpm,
            "http_429": limited(&requests), "tries_used_by_429": failed,
            "first_sent_ms": sent_ms(f64::min), "last_sent_ms": sent_ms(f64::max),
        }),
    ))
}

/// 1,000 calls of varied sizes at a binding requests limit, with a tokens limit too.
async fn binding(url: Option<&str>, run: usize) -> Result<Value, CliError> {
    let n = 1_000;
    let setup = Setup {
        latency: "200ms..600ms",
        rpm: 3_000,
        tpm: Some(2_400_000),
        workers: 4,
        concurrency: 16,
    };
    let (rpm, tpm) = (setup.rpm, setup.tpm.unwrap_or(u64::MAX));
    let rig = Rig::start(url, run, &setup).await?;
    let mut rng = fastrand::Rng::with_seed(run as u64);
    let jobs = (0..n)
        .map(|i| {
            request(
                &format!("call {i}"),
                rng.usize(200..4_000),
                rng.u64(50..400),
            )
        })
        .collect();
    let started = std::time::Instant::now();
    dispatch(&rig.spool, jobs).await?;
    let store = rig.scratch.store.clone();
    let (_, failed) = rig::wait_done(&*store, n as u64, Duration::from_secs(300)).await?;
    let wall = started.elapsed().as_secs_f64();
    let (scratch, requests) = rig.finish().await;
    let answered: Vec<&Value> = requests.iter().filter(|r| r["status"] == 200).collect();
    let tokens: u64 = answered
        .iter()
        .map(|r| {
            r["prompt_tokens"].as_u64().unwrap_or(0) + r["completion_tokens"].as_u64().unwrap_or(0)
        })
        .sum();
    let ideal = (n as f64 * 60.0 / rpm as f64).max(tokens as f64 * 60.0 / tpm as f64);
    let span_ms = answered.last().map_or(0.0, |l| at(l)) - answered.first().map_or(0.0, |f| at(f));
    let achieved = (answered.len().saturating_sub(1)) as f64 / span_ms.max(1.0) * 60_000.0;
    Ok(line(
        &scratch,
        run,
        "binding",
        json!({
            "workers": setup.workers, "concurrency": setup.concurrency, "n": n,
            "wall_s": round(wall), "ideal_s": round(ideal), "ratio": round(wall / ideal),
            "achieved_rpm": achieved.round(), "limit_rpm": rpm,
            "achieved_tpm": (tokens as f64 / span_ms.max(1.0) * 60_000.0).round(), "limit_tpm": tpm,
            "http_429": limited(&requests),
            "http_429_share": round(limited(&requests) as f64 / requests.len().max(1) as f64),
            "tries_used_by_429": failed,
        }),
    ))
}

/// 429s with a 1 s wait injected one at a time while four processes work.
async fn resume(url: Option<&str>, run: usize) -> Result<Value, CliError> {
    let (n, injections, wait_ms) = (1_500, 5, 1_000.0);
    let setup = Setup {
        latency: "40ms..120ms",
        rpm: 6_000,
        tpm: None,
        workers: 4,
        concurrency: 8,
    };
    let rig = Rig::start(url, run, &setup).await?;
    let started = std::time::Instant::now();
    let calls = (0..n).map(|i| request(&format!("call {i}"), 300, 100));
    dispatch(&rig.spool, calls.collect()).await?;
    for _ in 0..injections {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let script = json!([{"rate_limited": {"retry_after_ms": wait_ms as u64}}]);
        rig.mock.script(&script).await?;
    }
    let store = rig.scratch.store.clone();
    let (_, failed) = rig::wait_done(&*store, n as u64, Duration::from_secs(300)).await?;
    let wall = started.elapsed().as_secs_f64();
    let (scratch, requests) = rig.finish().await;
    let (mut early, mut lags) = (0, Vec::new());
    for limited in requests.iter().filter(|r| r["status"] == 429) {
        let t = at(limited);
        let until = t + limited["retry_after_ms"].as_f64().unwrap_or(wait_ms);
        // In flight when the 429 was answered is not early; after the pause is recorded
        // (milliseconds later), anything before `until` is.
        early += requests
            .iter()
            .filter(|r| at(r) > t + 25.0 && at(r) < until)
            .count();
        if let Some(next) = requests.iter().map(at).find(|a| *a >= until) {
            lags.push(next - until);
        }
    }
    lags.sort_by(f64::total_cmp);
    let p99 = lags
        .get((lags.len() * 99).div_ceil(100).saturating_sub(1))
        .copied();
    let ideal = n as f64 * 60.0 / setup.rpm as f64 + injections as f64 * wait_ms / 1000.0;
    Ok(line(
        &scratch,
        run,
        "resume",
        json!({
            "workers": setup.workers, "concurrency": setup.concurrency, "n": n,
            "wall_s": round(wall), "ideal_s": round(ideal),
            "achieved_rpm": null, "limit_rpm": setup.rpm,
            "http_429": limited(&requests), "tries_used_by_429": failed,
            "early_requests": early, "resume_lag_p99_ms": p99.map(|p| p.round()),
            "resume_lags_ms": lags.iter().map(|l| l.round()).collect::<Vec<_>>(),
        }),
    ))
}

/// A 500-document analyse → generate pipeline while workers are killed with SIGKILL.
async fn chaos(url: Option<&str>, run: usize) -> Result<Value, CliError> {
    let documents = 500;
    let setup = Setup {
        latency: "300ms..600ms",
        rpm: 6_000,
        tpm: None,
        workers: 4,
        concurrency: 16,
    };
    let mut rig = Rig::start(url, run, &setup).await?;
    let started = std::time::Instant::now();
    for d in 0..documents {
        rig.spool
            .chain()
            .then(request(&format!("analyse document {d}"), 600, 150))?
            .then(request(&format!("generate document {d}"), 900, 300))?
            .on_queue(QUEUE)
            .dispatch()
            .await?;
    }
    let n = 2 * documents as u64;
    let mut kills = 0;
    let done = loop {
        let stats = rig.scratch.store.stats().await?;
        if stats.processed + stats.failed >= n {
            break stats;
        }
        if started.elapsed() > Duration::from_secs(600) {
            return Err(CliError::Usage(
                "the chaos run did not finish in 10 minutes".into(),
            ));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        rig.pool.kill_one().await?;
        kills += 1;
    };
    let wall = started.elapsed().as_secs_f64();
    let (scratch, requests) = rig.finish().await;
    // Workers count an answer paid for although the job had recorded it, on the provider key
    // (completed jobs' recordings are deleted, so the count is where the evidence stays).
    let paid_twice: u64 = Llm::new(Vec::new())
        .map_err(|e| CliError::Usage(e.to_string()))?
        .status(&*scratch.store)
        .await?
        .iter()
        .map(|key| key.state.paid_again)
        .sum();
    let recordings = scratch.store.kv_list("llm:call:", 1_000_000).await?;
    // Calls cut off by a kill (the provider made the answer; nobody received it), and
    // requests answered more than once (recorded or not).
    let cut_off = requests.iter().filter(|r| r["status"] == 499).count();
    let mut answered: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for r in requests.iter().filter(|r| r["status"] == 200) {
        *answered
            .entry(r["request_hash"].as_str().unwrap_or_default())
            .or_default() += 1;
    }
    let answered_twice = answered.values().filter(|n| **n > 1).count();
    Ok(line(
        &scratch,
        run,
        "chaos",
        json!({
            "workers": setup.workers, "concurrency": setup.concurrency, "n": n,
            "wall_s": round(wall), "ideal_s": null,
            "achieved_rpm": null, "limit_rpm": setup.rpm,
            "http_429": limited(&requests), "tries_used_by_429": null,
            "kills": kills, "documents_lost": documents as u64 - done.processed.min(n) / 2,
            "failed_jobs": done.failed, "paid_twice": paid_twice,
            "cut_off_by_kills": cut_off, "answered_twice": answered_twice,
            "requests": requests.len(), "recordings": recordings.len(),
        }),
    ))
}
