//! Built-in jobs, so the `spool` binary is useful without writing Rust: `noop`, `sleep`,
//! `fail`, `flaky`, `panic`, and the privileged `shell`, `http` and `llm` (D-9: they run only
//! on workers started with `--allow shell,http,llm`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Job, JobContext, JobError, JobResult, Registry};

#[cfg(feature = "http")]
mod http;
mod secrets;
mod shell;

#[cfg(feature = "http")]
pub use http::{HeaderValue, Http, HttpPolicy};
pub use secrets::{WORKER_SECRETS, is_worker_secret};
pub use shell::Shell;

/// Does nothing (benchmarks, smoke tests).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Noop {}

impl Job for Noop {
    const NAME: &'static str = "noop";
    async fn handle(self, _ctx: JobContext) -> JobResult {
        Ok(())
    }
}

/// Sleeps `ms` milliseconds without blocking the worker (`{"ms": 100}`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Sleep {
    /// How long to sleep.
    #[serde(default)]
    pub ms: u64,
}

impl Job for Sleep {
    const NAME: &'static str = "sleep";
    async fn handle(self, _ctx: JobContext) -> JobResult {
        tokio::time::sleep(Duration::from_millis(self.ms)).await;
        Ok(())
    }
}

/// Always fails with a retryable error whose message is exactly `message`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fail {
    /// The error message.
    #[serde(default = "default_fail_message")]
    pub message: String,
}

fn default_fail_message() -> String {
    "failed on purpose".into()
}

impl Job for Fail {
    const NAME: &'static str = "fail";
    async fn handle(self, _ctx: JobContext) -> JobResult {
        Err(JobError::retry(self.message))
    }
}

/// Fails its first `fail_times` attempts, then succeeds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Flaky {
    /// Attempts that fail before one succeeds.
    #[serde(default)]
    pub fail_times: u32,
}

impl Job for Flaky {
    const NAME: &'static str = "flaky";
    async fn handle(self, ctx: JobContext) -> JobResult {
        if ctx.attempt() <= self.fail_times {
            return Err(JobError::retry(format!(
                "flaky: attempt {} of {} planned failures",
                ctx.attempt(),
                self.fail_times
            )));
        }
        Ok(())
    }
}

/// Panics (to show that a panicking handler is caught and recorded).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Panic {
    /// The panic message.
    #[serde(default)]
    pub message: Option<String>,
}

impl Job for Panic {
    const NAME: &'static str = "panic";
    async fn handle(self, _ctx: JobContext) -> JobResult {
        panic!("{}", self.message.unwrap_or_else(|| "panic job ran".into()));
    }
}

pub(crate) fn register_all(registry: Registry) -> Registry {
    let registry = registry
        .register::<Noop>()
        .register::<Sleep>()
        .register::<Fail>()
        .register::<Flaky>()
        .register::<Panic>()
        .register_privileged::<Shell>();
    #[cfg(feature = "http")]
    let registry = registry.register_privileged::<Http>();
    #[cfg(feature = "llm")]
    let registry = registry.register_privileged::<crate::llm::LlmJob>();
    registry
}
