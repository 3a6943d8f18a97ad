//! `spool stats`: what ran over a window, per queue and per job name — counts, throughput,
//! failure rate, wait and run percentiles — from the metrics workers keep in the store.

use std::{process::ExitCode, sync::Arc, time::Duration};

use clap::Args;
use serde::Serialize;
use spool::{
    Store,
    metrics::{Percentiles, SummaryRow, summarize},
};

use crate::{CliError, output};

/// The longest window: hour records are kept 30 days.
const MAX_WINDOW: Duration = Duration::from_secs(30 * 86_400);

/// `spool stats`.
#[derive(Debug, Args)]
pub(crate) struct StatsArgs {
    /// Print JSON (its shape is in docs/cli.md).
    #[arg(long)]
    json: bool,
    /// The window: 15m, 1h, 24h, 7d, ... up to 30d.
    #[arg(long, default_value = "1h", value_parser = parse_window)]
    since: Window,
    /// Only this queue.
    #[arg(long)]
    queue: Option<String>,
}

/// A window as given (`1h`) and as a duration.
#[derive(Debug, Clone)]
struct Window(String, Duration);

fn parse_window(text: &str) -> Result<Window, String> {
    let window = spool::parse_duration(text).map_err(|e| e.to_string())?;
    if window.is_zero() || window > MAX_WINDOW {
        return Err(format!(
            "`{text}` is out of range: give a window from 1s to 30d (15m, 1h, 24h, 7d)"
        ));
    }
    Ok(Window(text.trim().to_string(), window))
}

pub(crate) async fn stats(store: Arc<dyn Store>, a: StatsArgs) -> Result<ExitCode, CliError> {
    let window_ms = a.since.1.as_millis() as i64;
    let summary = summarize(store.as_ref(), window_ms, a.queue.as_deref()).await?;
    let llm = llm_usage(store.as_ref()).await?;
    if a.json {
        output::json(&Stats {
            summary: &summary,
            llm,
        });
        return Ok(ExitCode::SUCCESS);
    }
    println!("Last {}:", a.since.0);
    print_rows("QUEUE", &summary.queues);
    if !summary.jobs.is_empty() {
        println!();
        print_rows("JOB", &summary.jobs);
    }
    if summary.queues.is_empty() {
        println!("(nothing ran or waits in this window)");
    }
    if !llm.is_empty() {
        println!();
        println!(
            "{:<24} {:>9} {:>12} {:>6} {:>6} {:>10}",
            "LLM KEY (TODAY, UTC)", "REQUESTS", "TOKENS", "429S", "CACHED", "PAID AGAIN"
        );
        for k in &llm {
            println!(
                "{:<24} {:>9} {:>12} {:>6} {:>6} {:>10}",
                k.key, k.requests_today, k.tokens_today, k.http_429, k.cache_hits, k.paid_again
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `stats --json`: the summary, and each provider key's use of model calls today.
#[derive(Serialize)]
struct Stats<'a> {
    #[serde(flatten)]
    summary: &'a spool::metrics::Summary,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    llm: Vec<LlmUsage>,
}

/// One provider key's model calls today (UTC), from the shared state workers keep.
#[derive(Serialize)]
struct LlmUsage {
    key: String,
    requests_today: u64,
    tokens_today: u64,
    http_429: u64,
    cache_hits: u64,
    paid_again: u64,
}

#[cfg(feature = "llm")]
async fn llm_usage(store: &dyn Store) -> Result<Vec<LlmUsage>, CliError> {
    Ok(spool::llm::usage(store)
        .await?
        .into_iter()
        .map(|(key, s)| LlmUsage {
            key,
            requests_today: s.requests_today,
            tokens_today: s.tokens_today,
            http_429: s.http_429,
            cache_hits: s.cache_hits,
            paid_again: s.paid_again,
        })
        .collect())
}

#[cfg(not(feature = "llm"))]
async fn llm_usage(_: &dyn Store) -> Result<Vec<LlmUsage>, CliError> {
    Ok(Vec::new())
}

fn print_rows(kind: &str, rows: &[SummaryRow]) {
    output::table_of(
        &[
            kind,
            "COMPLETED",
            "FAILED",
            "FAIL %",
            "PER MIN",
            "WAIT p50/p95/p99",
            "RUN p50/p95/p99",
            "OLDEST READY",
        ],
        rows,
        |r| {
            vec![
                r.name.clone(),
                r.completed.to_string(),
                r.failed.to_string(),
                format!("{:.1}", r.failure_rate * 100.0),
                format!("{:.1}", r.throughput_per_min),
                percentiles(&r.wait_ms),
                percentiles(&r.run_ms),
                r.oldest_ready_age_ms
                    .map(|ms| spool::format_duration(Duration::from_millis(ms)))
                    .unwrap_or_else(|| "-".into()),
            ]
        },
    );
}

/// `p50/p95/p99` in a compact unit, `-` without data.
pub(crate) fn percentiles(p: &Percentiles) -> String {
    [p.p50, p.p95, p.p99]
        .iter()
        .map(|v| v.map_or_else(|| "-".to_string(), format_ms))
        .collect::<Vec<_>>()
        .join("/")
}

/// A bucket bound in ms, compactly: `1ms`, `3.4ms`, `171ms`, `2.6s`, `41m`.
pub(crate) fn format_ms(ms: f64) -> String {
    if ms < 10.0 {
        format!("{}ms", (ms * 10.0).round() / 10.0)
    } else if ms < 1000.0 {
        format!("{}ms", ms.round())
    } else if ms < 60_000.0 {
        format!("{:.1}s", ms / 1000.0)
    } else {
        format!("{:.0}m", ms / 60_000.0)
    }
}
