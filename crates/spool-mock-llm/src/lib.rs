//! An offline OpenAI-compatible chat-completions server: the referee of Spool's LLM tests
//! and benchmarks (`spool mock-llm`).
//!
//! It enforces requests and tokens per minute with real token buckets at the per-second
//! grain (as providers do: "60,000 a minute may be enforced as 1,000 a second"), answers
//! over the limit with a 429 carrying `retry-after`, `retry-after-ms` and OpenAI's
//! `x-ratelimit-*` headers, sends those headers on every answer, and logs every request with
//! its arrival time, so a test can prove a client never sent early.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use spool_mock_llm::{MockConfig, MockLlm};
//! let config = MockConfig { rpm: Some(60), ..MockConfig::default() };
//! let mock = MockLlm::start(config, "127.0.0.1:0".parse().unwrap()).await?;
//! println!("OPENAI_BASE_URL={}", mock.base_url());
//! // ... run clients against it, then read what arrived when:
//! for request in mock.requests() {
//!     println!("{} ms: {}", request.at_ms, request.status);
//! }
//! mock.shutdown().await;
//! # Ok(()) }
//! ```

mod bucket;
mod server;
mod tokens;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use serde::{Deserialize, Serialize};

/// What the mock enforces and how it answers.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Requests per minute (none: no limit).
    pub rpm: Option<u64>,
    /// Tokens per minute: prompt tokens plus `max_tokens` are reserved when a request is
    /// admitted, and what the answer did not use is given back (as OpenAI counts).
    pub tpm: Option<u64>,
    /// Each admitted request is answered after a delay drawn uniformly from this range.
    pub latency: (Duration, Duration),
    /// The share of admitted requests answered 500.
    pub fail_rate: f64,
    /// How much of a minute's limit a bucket holds (1 s: a second's worth).
    pub burst: Duration,
    /// If set, requests must carry `Authorization: Bearer <key>` (else 401).
    pub api_key: Option<String>,
    /// Tokens after which every request gets 429 `insufficient_quota`.
    pub quota_tokens: Option<u64>,
    /// Also append each log entry to this file as a JSON line.
    pub log: Option<PathBuf>,
    /// If set, the models served (others get 404 `model_not_found`).
    pub models: Option<Vec<String>>,
    /// Seeds the latency and failure draws.
    pub seed: u64,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            rpm: None,
            tpm: None,
            latency: (Duration::ZERO, Duration::ZERO),
            fail_rate: 0.0,
            burst: Duration::from_secs(1),
            api_key: None,
            quota_tokens: None,
            log: None,
            models: None,
            seed: 0,
        }
    }
}

/// One request as the mock saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedRequest {
    /// When it arrived, ms since the Unix epoch (sub-millisecond precision).
    pub at_ms: f64,
    /// Arrival order, from 1.
    pub seq: u64,
    /// The model asked for.
    pub model: String,
    /// Its prompt tokens (estimated as the mock counts them).
    pub prompt_tokens: u64,
    /// Its `max_tokens`, if any.
    pub max_tokens: Option<u64>,
    /// Completion tokens of the answer (0 unless answered 200).
    pub completion_tokens: u64,
    /// The HTTP status answered (499: the client went away before the answer was sent).
    pub status: u16,
    /// The error code answered, if any.
    pub code: Option<String>,
    /// FNV-1a 64 of the request body, hex: equal bodies, equal hashes.
    pub request_hash: String,
    /// Whether the request carried the right key (always true without one configured).
    pub authorized: bool,
    /// The wait a 429 or 503 named, ms.
    pub retry_after_ms: Option<u64>,
}

/// An answer a test makes the next request get instead of the normal one (after the key is
/// checked). JSON: `{"rate_limited": {"retry_after_ms": 1500}}`, `{"overloaded": {...}}`,
/// `"insufficient_quota"`, `"server_error"`, `"not_json"`, `{"status": 502}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScriptedResponse {
    /// 429 `rate_limit_exceeded` with `retry-after` and `retry-after-ms`.
    RateLimited {
        /// The wait named.
        retry_after_ms: u64,
    },
    /// 503 with `retry-after` and `retry-after-ms`.
    Overloaded {
        /// The wait named.
        retry_after_ms: u64,
    },
    /// 429 `insufficient_quota`, no wait.
    InsufficientQuota,
    /// 500 `server_error`.
    ServerError,
    /// 502 with an HTML body.
    NotJson,
    /// This status with an OpenAI-style error body.
    Status(u16),
}

/// A running mock.
#[derive(Debug)]
pub struct RunningMock {
    addr: SocketAddr,
    shared: Arc<server::Shared>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// Starts mocks.
#[derive(Debug)]
pub struct MockLlm;

impl MockLlm {
    /// Serves `config` on `bind` (port 0: any free port) until shut down.
    pub async fn start(config: MockConfig, bind: SocketAddr) -> std::io::Result<RunningMock> {
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(server::Shared::new(config)?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = server::router(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(RunningMock {
            addr,
            shared,
            stop,
            task,
        })
    }
}

impl RunningMock {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its OpenAI-compatible base URL, `http://ADDR/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.shared.log_entries()
    }

    /// The next requests get these answers instead of the normal ones.
    pub fn script(&self, responses: Vec<ScriptedResponse>) {
        self.shared.push_script(responses);
    }

    /// Stops serving.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Reads a log file written with [`MockConfig::log`].
pub fn read_log(path: &Path) -> std::io::Result<Vec<LoggedRequest>> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(std::io::Error::other))
        .collect()
}

/// Locks a mutex, taking it over if a holder panicked.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
