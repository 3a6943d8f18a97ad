//! `spool schedule list`: the configuration file's `[[schedule]]` entries and their next runs.

use std::process::ExitCode;

use chrono::{SecondsFormat, Utc};
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::{CliError, output, supervise::ScheduleEntry};

/// `spool schedule`'s subcommands.
#[derive(Debug, Args)]
pub(crate) struct ScheduleArgs {
    #[command(subcommand)]
    command: ScheduleCommand,
}

#[derive(Debug, Subcommand)]
enum ScheduleCommand {
    /// Each `[[schedule]]` entry with its next three run times.
    List {
        /// One JSON document: `{"schedules":[{"name","cron","timezone","job","queue","next"}]}`.
        #[arg(long)]
        json: bool,
    },
}

/// One entry as `schedule list --json` shows it.
#[derive(Debug, Serialize)]
struct Listed {
    name: String,
    cron: String,
    timezone: String,
    job: String,
    queue: String,
    /// The next three runs, RFC 3339 in UTC.
    next: Vec<String>,
}

#[derive(Serialize)]
struct Listing {
    schedules: Vec<Listed>,
}

pub(crate) fn run(schedules: &[ScheduleEntry], a: ScheduleArgs) -> Result<ExitCode, CliError> {
    let ScheduleCommand::List { json } = a.command;
    let now = Utc::now();
    let listed: Vec<Listed> = schedules
        .iter()
        .map(|(entry, periodic)| {
            let mut next = Vec::new();
            let mut after = now;
            while next.len() < 3 {
                let Some(at) = periodic.next_after(after) else {
                    break;
                };
                next.push(at.to_rfc3339_opts(SecondsFormat::Secs, true));
                after = at;
            }
            Listed {
                name: entry.name.clone(),
                cron: entry.cron.clone(),
                timezone: periodic.zone().unwrap_or("UTC").to_string(),
                job: entry.job.clone(),
                queue: entry.queue.clone(),
                next,
            }
        })
        .collect();
    if json {
        output::json(&Listing { schedules: listed });
    } else if listed.is_empty() {
        println!("no schedules (add [[schedule]] entries to spool.toml)");
    } else {
        let rows: Vec<Vec<String>> = listed
            .into_iter()
            .map(|l| {
                vec![
                    l.name,
                    l.cron,
                    l.timezone,
                    l.job,
                    l.queue,
                    l.next.first().cloned().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        output::table(&["NAME", "CRON", "TIMEZONE", "JOB", "QUEUE", "NEXT"], &rows);
    }
    Ok(ExitCode::SUCCESS)
}
