//! The `shell` job: runs `sh -c CMD`; a non-zero exit is a (retryable) failure whose record
//! keeps the command's output.

use serde::{Deserialize, Serialize};

use crate::{Job, JobContext, JobError, JobResult};

/// Kept per stream in a failure record.
const OUTPUT_EXCERPT: usize = 4000;
/// How much of the command a failure message quotes: the record is for finding the job, and
/// a long command line may carry data it should not copy in full.
const COMMAND_EXCERPT: usize = 120;

/// `{"cmd": "..."}`: a shell command. Privileged: needs `--allow shell` on the worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shell {
    /// The command line, run with `sh -c`.
    pub cmd: String,
}

impl Job for Shell {
    const NAME: &'static str = "shell";

    async fn handle(self, ctx: JobContext) -> JobResult {
        let mut command = tokio::process::Command::new("sh");
        command
            .arg("-c")
            .arg(&self.cmd)
            .stdin(std::process::Stdio::null())
            // A timed-out job's task is dropped; take the child process down with it.
            .kill_on_drop(true);
        // The worker's own secrets (encryption keys, the store URL with its password, tokens)
        // are Spool's, not the command's; what Spool tells the command is set after.
        for (name, _) in std::env::vars_os() {
            if is_spools_own(&name) {
                command.env_remove(name);
            }
        }
        command.envs(context_env(&ctx));
        let output = match command.output().await {
            Ok(output) => output,
            Err(e) if e.kind() == std::io::ErrorKind::ArgumentListTooLong => {
                // It can never start: retrying would fail the same way.
                return Err(JobError::fail(format!(
                    "command `{}` ({} bytes) is longer than the system's argument limit: \
                     pass large data through a file or the job's payload instead",
                    shorten(&self.cmd),
                    self.cmd.len()
                )));
            }
            Err(e) => return Err(e.into()),
        };
        if output.status.success() {
            return Ok(());
        }
        let status = match output.status.code() {
            Some(code) => format!("exit status {code}"),
            None => "killed by a signal".to_string(),
        };
        let streams = [("stdout", &output.stdout), ("stderr", &output.stderr)];
        let causes = streams.into_iter().filter_map(|(name, bytes)| {
            let text = excerpt(bytes);
            (!text.is_empty()).then(|| format!("{name}: {text}"))
        });
        Err(JobError::retry(format!(
            "command `{}` failed with {status}",
            shorten(&self.cmd)
        ))
        .with_causes(causes))
    }
}

/// Whether an environment variable is one of Spool's own (`SPOOL_KEY`, `SPOOL_URL`, ...),
/// kept from the command.
fn is_spools_own(name: &std::ffi::OsStr) -> bool {
    name.to_str().is_some_and(|n| n.starts_with("SPOOL_"))
}

/// The command as a failure message quotes it: its first characters.
fn shorten(cmd: &str) -> String {
    match cmd.char_indices().nth(COMMAND_EXCERPT) {
        Some((cut, _)) => format!("{}…", &cmd[..cut]),
        None => cmd.to_string(),
    }
}

/// What the command is told about its job: `SPOOL_JOB_ID`, its batch as `SPOOL_BATCH_ID`, and
/// for a chain's catch job the failed link as `SPOOL_FAILED_JOB_ID` (the error stays out of the
/// environment: it is free text of any size).
fn context_env(ctx: &JobContext) -> Vec<(&'static str, String)> {
    let mut env = vec![("SPOOL_JOB_ID", ctx.id().to_string())];
    let callback = ctx.callback();
    let batch = callback
        .and_then(|c| c.batch_id.as_deref())
        .or(ctx.batch_id());
    if let Some(batch) = batch {
        env.push(("SPOOL_BATCH_ID", batch.to_string()));
    }
    if let Some(failed) = callback.and_then(|c| c.failed_job_id.as_deref()) {
        env.push(("SPOOL_FAILED_JOB_ID", failed.to_string()));
    }
    env
}

pub(crate) fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.len() <= OUTPUT_EXCERPT {
        return text.to_string();
    }
    let mut cut = OUTPUT_EXCERPT;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &text[..cut])
}
