//! `spool status`, `spool size`.

use std::{process::ExitCode, sync::Arc, time::Duration};

use clap::Args;

use super::{CliError, output};
use spool::{
    Store, format_duration,
    store::{QueueStats, Stats},
};

#[derive(Debug, Args)]
pub(crate) struct JsonFlag {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// The stats with the default queue always listed, so scripts can rely on it.
async fn stats_with_default(store: &dyn Store) -> Result<Stats, CliError> {
    let control = store.control().await?;
    let mut stats = store.stats().await?.with_control(&control);
    if !stats.queues.iter().any(|q| q.name == spool::DEFAULT_QUEUE) {
        stats.queues.push(QueueStats {
            name: spool::DEFAULT_QUEUE.into(),
            ..Default::default()
        });
        stats.queues.sort_by(|a, b| a.name.cmp(&b.name));
    }
    Ok(stats)
}

pub(crate) async fn status(store: Arc<dyn Store>, a: JsonFlag) -> Result<ExitCode, CliError> {
    let stats = stats_with_default(store.as_ref()).await?;
    let supervisors = crate::supervise::registry::live(store.as_ref()).await?;
    let stuck = crate::stuck::find(store.as_ref(), &stats).await?;
    if a.json {
        let mut json = serde_json::to_value(&stats).expect("plain data serializes");
        json["supervisors"] = serde_json::to_value(&supervisors).expect("plain data serializes");
        json["stuck"] = serde_json::to_value(&stuck).expect("plain data serializes");
        output::json(&json);
        return Ok(ExitCode::SUCCESS);
    }
    // S-DISP-2: a job on a queue no worker serves waits forever, silently; say so.
    let consumers = |queue: &str| {
        stats
            .workers
            .iter()
            .filter(|w| w.queues.iter().any(|q| q == queue))
            .count()
    };
    output::table_of(
        &[
            "QUEUE",
            "PENDING",
            "DELAYED",
            "RESERVED",
            "OLDEST READY",
            "WORKERS",
            "PAUSED",
            "",
        ],
        &stats.queues,
        |q| {
            let workers = consumers(&q.name);
            let note = if workers == 0 && q.pending + q.delayed > 0 && !q.paused {
                "no consumer"
            } else {
                ""
            };
            vec![
                q.name.clone(),
                q.pending.to_string(),
                q.delayed.to_string(),
                q.reserved.to_string(),
                if q.pending == 0 {
                    "-".to_string()
                } else {
                    format_duration(Duration::from_millis(q.oldest_ready_age_ms))
                },
                workers.to_string(),
                if q.paused { "paused" } else { "-" }.to_string(),
                note.to_string(),
            ]
        },
    );
    println!(
        "\nprocessed: {}   failed: {}   store: {}",
        stats.processed,
        stats.failed,
        store.backend()
    );
    if stats.workers.is_empty() {
        println!("workers: none running");
    } else {
        println!("workers:");
        output::table_of(
            &["ID", "HOST", "PID", "QUEUES", "BUSY", "LAST SEEN", ""],
            &stats.workers,
            |w| {
                vec![
                    w.id.clone(),
                    w.host.clone(),
                    w.pid.to_string(),
                    w.queues.join(","),
                    w.busy.len().to_string(),
                    w.last_seen_ms.map_or("-".to_string(), |ms| {
                        format!("{} ago", format_duration(Duration::from_millis(ms)))
                    }),
                    // Heartbeats come every third of the lease: past half of it the process
                    // has most likely died; its jobs return when the lease runs out.
                    if w.is_silent() { "silent" } else { "" }.to_string(),
                ]
            },
        );
    }
    for expired in &stuck.expired_workers {
        println!(
            "stuck: worker {} (lease expired) still holds {} job(s); the reaper returns them within a third of a lease",
            expired.worker, expired.jobs
        );
    }
    for overdue in &stuck.past_timeout {
        println!(
            "stuck: job {} ({} on `{}`) has run {} against a timeout of {}{}",
            overdue.id,
            overdue.job,
            overdue.queue,
            format_duration(Duration::from_millis(overdue.running_for_ms)),
            format_duration(Duration::from_millis(overdue.timeout_ms)),
            overdue
                .worker
                .as_ref()
                .map_or(String::new(), |w| format!(" on worker {w}"))
        );
    }
    if !supervisors.is_empty() {
        println!("supervisors:");
        let rows: Vec<(&str, &str, u32, &crate::supervise::registry::PoolStatus)> = supervisors
            .iter()
            .flat_map(|s| {
                s.pools
                    .iter()
                    .map(move |p| (s.id.as_str(), s.host.as_str(), s.pid, p))
            })
            .collect();
        output::table_of(
            &[
                "ID",
                "HOST",
                "PID",
                "POOL",
                "QUEUES",
                "PROCESSES",
                "MIN",
                "MAX",
                "BALANCE",
                "STATE",
            ],
            &rows,
            |(id, host, pid, p)| {
                vec![
                    id.to_string(),
                    host.to_string(),
                    pid.to_string(),
                    p.name.clone(),
                    p.queues.join(","),
                    p.processes.to_string(),
                    p.min.to_string(),
                    p.max.to_string(),
                    p.balance.clone(),
                    match &p.error {
                        Some(why) => format!("{}: {why}", p.state),
                        None => p.state.clone(),
                    },
                ]
            },
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub(crate) struct SizeArgs {
    /// Queues to count (all if none).
    queues: Vec<String>,
}

pub(crate) async fn size(store: Arc<dyn Store>, a: SizeArgs) -> Result<ExitCode, CliError> {
    let stats = store.stats().await?;
    let size = |name: &str| {
        stats
            .queues
            .iter()
            .find(|q| q.name == name)
            .map_or(0, |q| q.pending + q.delayed + q.reserved)
    };
    let names: Vec<String> = if a.queues.is_empty() {
        stats.queues.iter().map(|q| q.name.clone()).collect()
    } else {
        a.queues
    };
    for name in names {
        println!("{name} {}", size(&name));
    }
    Ok(ExitCode::SUCCESS)
}
