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

    async fn handle(self, _ctx: JobContext) -> JobResult {
        let output = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&self.cmd)
            .stdin(std::process::Stdio::null())
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
