//! The `shell` job: runs `sh -c CMD`; a non-zero exit is a (retryable) failure whose record
//! keeps the command's output.

use serde::{Deserialize, Serialize};

use crate::{Job, JobContext, JobError, JobResult};

/// Kept per stream in a failure record.
const OUTPUT_EXCERPT: usize = 4000;

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
        let output = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&self.cmd)
            .stdin(std::process::Stdio::null())
            .envs(context_env(&ctx))
            // A timed-out job's task is dropped; take the child process down with it.
            .kill_on_drop(true)
            .output()
            .await?;
        if output.status.success() {
            return Ok(());
        }
        let status = match output.status.code() {
            Some(code) => format!("exit status {code}"),
            None => "killed by a signal".to_string(),
        };
        Err(
            JobError::retry(format!("command `{}` failed with {status}", self.cmd)).with_causes([
                format!("stdout: {}", excerpt(&output.stdout)),
                format!("stderr: {}", excerpt(&output.stderr)),
            ]),
        )
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
