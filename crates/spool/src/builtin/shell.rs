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

    async fn handle(self, _ctx: JobContext) -> JobResult {
        let mut command = tokio::process::Command::new("sh");
        command
            .arg("-c")
            .arg(&self.cmd)
            .stdin(std::process::Stdio::null())
            // A timed-out job's task is dropped; take the child process down with it.
            .kill_on_drop(true);
        // The worker's own secrets (encryption keys, the store URL with its password, tokens)
        // are Spool's, not the command's.
        for (name, _) in std::env::vars_os() {
            if is_spools_own(&name) {
                command.env_remove(name);
            }
        }
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
