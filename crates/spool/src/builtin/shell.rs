//! The `shell` job: runs `sh -c CMD`; a non-zero exit is a (retryable) failure whose record
//! keeps the command's output.

use serde::{Deserialize, Serialize};

use super::secrets::is_worker_secret;
use crate::{Job, JobContext, JobError, JobResult};

/// Kept per stream in a failure record.
const OUTPUT_EXCERPT: usize = 4000;

/// How much of the command a failure message quotes: enough to recognise it, not a dump of
/// whatever data (or credentials) it carries.
const COMMAND_EXCERPT: usize = 80;

/// `{"cmd": "..."}`: a shell command. Privileged: needs `--allow shell` on the worker.
///
/// The command runs with the worker's environment minus Spool's own secrets (see
/// [`WORKER_SECRETS`](super::WORKER_SECRETS)).
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
        for (name, _) in std::env::vars_os() {
            if name.to_str().is_some_and(is_worker_secret) {
                command.env_remove(name);
            }
        }
        // Nor the language-model providers' keys the worker calls with.
        #[cfg(feature = "llm")]
        for name in provider_key_vars(&ctx) {
            command.env_remove(name);
        }
        // What Spool tells the command, set after the secrets are taken out.
        command.envs(context_env(&ctx));
        let shown = shorten(&self.cmd);
        let output = match command.output().await {
            Ok(output) => output,
            // The kernel refuses an argument this long; no retry can change that.
            Err(e) if e.kind() == std::io::ErrorKind::ArgumentListTooLong => {
                return Err(JobError::fail(format!(
                    "command `{shown}` ({} bytes) is over the system's limit for one argument: \
                     pass large data through a file or standard input instead",
                    self.cmd.len()
                )));
            }
            Err(e) => {
                return Err(
                    JobError::retry(format!("command `{shown}` could not start: {e}"))
                        .with_causes(crate::cause_chain(&e)),
                );
            }
        };
        if output.status.success() {
            return Ok(());
        }
        let status = match output.status.code() {
            Some(code) => format!("exit status {code}"),
            None => "killed by a signal".to_string(),
        };
        // An empty stream says nothing; the record keeps only the streams with output.
        let causes = [("stdout", &output.stdout), ("stderr", &output.stderr)]
            .into_iter()
            .map(|(stream, bytes)| (stream, excerpt(bytes)))
            .filter(|(_, text)| !text.is_empty())
            .map(|(stream, text)| format!("{stream}: {text}"));
        Err(JobError::retry(format!("command `{shown}` failed with {status}")).with_causes(causes))
    }
}

/// The command as a failure message quotes it: one line, at most [`COMMAND_EXCERPT`]
/// characters.
fn shorten(cmd: &str) -> String {
    let line: String = cmd
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match line.char_indices().nth(COMMAND_EXCERPT) {
        None => line,
        Some((cut, _)) => format!("{}…", &line[..cut]),
    }
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

/// The environment variables holding the configured language-model providers' keys (and
/// `OPENAI_API_KEY`, the default provider's).
#[cfg(feature = "llm")]
fn provider_key_vars(ctx: &JobContext) -> Vec<String> {
    let mut names = vec!["OPENAI_API_KEY".to_string()];
    if let Ok(llm) = ctx.state::<crate::llm::Llm>() {
        names.extend(llm.providers().iter().filter_map(|p| p.api_key_env.clone()));
    }
    names
}
