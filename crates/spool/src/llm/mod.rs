//! Language-model calls as first-class work: providers' limits shared by every worker through
//! the store, 429s obeyed as scheduling events, and no call paid for twice.
//!
//! A job calls a model with [`JobContext::llm`](crate::JobContext::llm); the built-in `llm`
//! job ([`LlmJob`]) does the same for jobs dispatched from the command line.
//!
//! - **Admission** ([`admission`]): each provider key (or model with limits of its own) has one
//!   state in the store's key-value part. A call reserves its estimated tokens and a request,
//!   and is sent at the instant that keeps every process under the limits, at the per-second
//!   grain; the answer's `usage` corrects the reservation and its headers lower the limits
//!   (never raise them).
//! - **429s**: a retryable 429 (or a 503 with a wait) parks the whole key until the instant
//!   the server named — no process sends on it before — and defers the job without using a
//!   try. A spent quota blocks the key until `spool llm resume`. Configuration errors (400,
//!   401, 403, 404, 422) fail the job at once; other failures retry with its backoff.
//! - **Never paying twice**: every answer is recorded with the job (by a hash of provider,
//!   model and request), so a retried job reuses what it already paid for; finished
//!   [`JobContext::step`](crate::JobContext::step)s are kept the same way. Providers with a
//!   `cache_ttl` share identical answers between jobs.
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use serde_json::json;
//! use spool::{Job, JobContext, JobResult};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Summarise { text: String }
//!
//! impl Job for Summarise {
//!     const NAME: &'static str = "summarise";
//!     async fn handle(self, ctx: JobContext) -> JobResult {
//!         let answer = ctx
//!             .llm()
//!             .chat(json!({
//!                 "model": "gpt-4o-mini",
//!                 "messages": [{"role": "user", "content": format!("Summarise: {}", self.text)}],
//!                 "max_tokens": 200,
//!             }))
//!             .await?;
//!         ctx.set_result(&json!({ "summary": answer.content }))?;
//!         Ok(())
//!     }
//! }
//! ```

pub mod admission;
mod call;
mod estimate;
mod headers;
mod job;
mod provider;
mod session;
mod shared;
mod status;

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

pub use admission::{Cost, KeyState};
pub use estimate::DEFAULT_MAX_TOKENS;
pub use job::LlmJob;
pub use provider::{DEFAULT_PROVIDER, Limits, OPENAI_BASE_URL, ProviderConfig, check_providers};
pub use session::{ChatAnswer, LlmCall};
pub use status::{KeyStatus, usage};

/// The model client every job shares: the configured providers and one HTTP connection pool.
/// Register it as app state (`Registry::with_state(Llm::new(providers)?)`); jobs in a
/// process without one use [`Llm::from_env`].
#[derive(Debug, Clone)]
pub struct Llm {
    providers: Vec<ProviderConfig>,
    http: reqwest::Client,
    max_inline_wait: Duration,
    /// Usage writes that calls' jobs did not wait for.
    background: Arc<crate::background::Background>,
}

/// A provider configuration Spool cannot use.
#[derive(Debug, thiserror::Error)]
#[error("llm providers: {0}")]
pub struct LlmConfigError(String);

impl Llm {
    /// The client for `providers` (checked); with none, the provider `OPENAI_BASE_URL` and
    /// `OPENAI_API_KEY` describe.
    pub fn new(providers: Vec<ProviderConfig>) -> Result<Llm, LlmConfigError> {
        let providers = if providers.is_empty() {
            vec![ProviderConfig::from_env()]
        } else {
            providers
        };
        check_providers(&providers).map_err(LlmConfigError)?;
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| LlmConfigError(format!("building the HTTP client: {e}")))?;
        Ok(Llm {
            providers,
            http,
            max_inline_wait: Duration::from_secs(1),
            background: Arc::default(),
        })
    }

    /// The client for the OpenAI-compatible API `OPENAI_BASE_URL` (default the OpenAI API)
    /// with the key in `OPENAI_API_KEY`, as the OpenAI SDKs read them.
    pub fn from_env() -> Llm {
        Llm::new(Vec::new()).expect("the environment's provider is valid")
    }

    /// The process-wide client of jobs whose registry has none: [`Llm::from_env`], built once.
    pub(crate) fn fallback() -> &'static Llm {
        static DEFAULT: OnceLock<Llm> = OnceLock::new();
        DEFAULT.get_or_init(Llm::from_env)
    }

    /// Calls that would wait longer than this for capacity defer their job instead of
    /// waiting in it (default 1 s). Shorter waits cost less than a round trip through the
    /// queue, and keep the send instants exact.
    pub fn with_max_inline_wait(mut self, wait: Duration) -> Self {
        self.max_inline_wait = wait;
        self
    }

    /// Waits (at most 5 s) for the shared-state writes that calls' jobs did not wait for:
    /// what each answer used and taught about its key. A worker process calls it before it
    /// exits (`spool work` does), so the key's use today is complete.
    pub async fn flush(&self) {
        self.background.finish(Duration::from_secs(5)).await;
    }

    /// The configured providers.
    pub fn providers(&self) -> &[ProviderConfig] {
        &self.providers
    }

    /// The provider called `name`, or the first configured when `name` is `None`.
    pub fn provider(&self, name: Option<&str>) -> Result<&ProviderConfig, String> {
        match name {
            None => Ok(&self.providers[0]),
            Some(name) => self
                .providers
                .iter()
                .find(|p| p.name == name)
                .ok_or_else(|| {
                    let known: Vec<&str> = self.providers.iter().map(|p| p.name.as_str()).collect();
                    format!(
                        "no provider is called `{name}`; configured: {}",
                        known.join(", ")
                    )
                }),
        }
    }
}
