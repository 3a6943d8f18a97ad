//! `spool health`: the store's health checks, for probes and scripts.

use std::{process::ExitCode, time::Duration};

use clap::Args;
use spool::{
    StoreError,
    health::{HealthOptions, HealthReport},
};

use crate::{CliError, args, output};

#[derive(Debug, Args)]
pub(crate) struct HealthArgs {
    /// One JSON document: `{"healthy":bool,"checks":[{"name","ok","detail"}]}`.
    #[arg(long)]
    json: bool,
    /// Unhealthy when a queue's oldest ready job waited longer than this.
    #[arg(long, value_parser = args::duration, default_value = "5m")]
    max_wait: Duration,
    /// Unhealthy when the failed store holds more than N records.
    #[arg(long, value_name = "N")]
    max_failed: Option<u64>,
    /// Unhealthy when a worker's lease expired longer than this ago and no reaper removed it
    /// (one reap interval: a third of the default 30 s lease, plus jitter).
    #[arg(long, value_parser = args::duration, default_value = "15s")]
    max_expired: Duration,
}

/// Exit code when the store cannot be reached (2 stays the usage error).
const UNREACHABLE: u8 = 3;

pub(crate) async fn run(url: &str, a: HealthArgs) -> Result<ExitCode, CliError> {
    let options = HealthOptions {
        max_wait: a.max_wait,
        max_failed: a.max_failed,
        max_expired: a.max_expired,
    };
    let report = match spool::store::open_existing(url).await {
        Ok(store) => spool::health::check(&*store, &options).await,
        Err(e) => Err(e),
    };
    let report = match report {
        Ok(report) => report,
        Err(e) => {
            let unreachable = e.is_unavailable();
            print_store_failure(&e, a.json);
            return Ok(if unreachable {
                ExitCode::from(UNREACHABLE)
            } else {
                ExitCode::FAILURE
            });
        }
    };
    if a.json {
        output::json(&report);
    } else {
        print(&report);
    }
    Ok(if report.healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print(report: &HealthReport) {
    for c in &report.checks {
        println!(
            "{:<4} {:<10} {}",
            if c.ok { "ok" } else { "FAIL" },
            c.name,
            c.detail
        );
    }
    println!(
        "{}",
        if report.healthy {
            "healthy"
        } else {
            "unhealthy"
        }
    );
}

fn print_store_failure(e: &StoreError, json: bool) {
    if json {
        output::json(&serde_json::json!({
            "healthy": false,
            "checks": [{"name": "store", "ok": false, "detail": e.to_string()}],
        }));
    } else {
        println!("FAIL store      {e}");
        println!("unhealthy");
    }
}
