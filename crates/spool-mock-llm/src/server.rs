//! The HTTP side: routes, admission against the buckets, answers and the log.

use std::{
    collections::VecDeque,
    io::Write,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};

use crate::{
    LoggedRequest, MockConfig, ScriptedResponse,
    bucket::Bucket,
    lock,
    tokens::{self, fnv1a, openai_duration},
};

/// What every request handler shares.
#[derive(Debug)]
pub(crate) struct Shared {
    config: MockConfig,
    limits: Mutex<Limits>,
    seq: AtomicU64,
    log: Mutex<Vec<LoggedRequest>>,
    file: Option<Mutex<std::fs::File>>,
    script: Mutex<VecDeque<ScriptedResponse>>,
    rng: Mutex<fastrand::Rng>,
}

#[derive(Debug)]
struct Limits {
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
    used_tokens: u64,
}

impl Shared {
    pub(crate) fn new(config: MockConfig) -> std::io::Result<Shared> {
        let burst = config.burst.as_secs_f64() * 1000.0;
        let now = now_ms();
        let file = match &config.log {
            Some(path) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            )),
            None => None,
        };
        Ok(Shared {
            limits: Mutex::new(Limits {
                requests: config.rpm.map(|l| Bucket::new(l, burst, now)),
                tokens: config.tpm.map(|l| Bucket::new(l, burst, now)),
                used_tokens: 0,
            }),
            seq: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
            file,
            script: Mutex::new(VecDeque::new()),
            rng: Mutex::new(fastrand::Rng::with_seed(config.seed)),
            config,
        })
    }

    pub(crate) fn log_entries(&self) -> Vec<LoggedRequest> {
        let mut all = lock(&self.log).clone();
        all.sort_by_key(|e| e.seq);
        all
    }

    pub(crate) fn push_script(&self, responses: Vec<ScriptedResponse>) {
        lock(&self.script).extend(responses);
    }

    fn record(&self, entry: LoggedRequest) {
        if let Some(file) = &self.file
            && let Ok(line) = serde_json::to_string(&entry)
        {
            let mut file = lock(file);
            let _ = writeln!(file, "{line}");
            let _ = file.flush();
        }
        lock(&self.log).push(entry);
    }

    /// The `x-ratelimit-*` headers as of `now`.
    fn rate_headers(&self, now: f64) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let mut guard = lock(&self.limits);
        let limits = &mut *guard;
        for (name, bucket) in [
            ("requests", &mut limits.requests),
            ("tokens", &mut limits.tokens),
        ] {
            if let Some(b) = bucket {
                for (key, value) in [
                    (format!("x-ratelimit-limit-{name}"), b.limit.to_string()),
                    (
                        format!("x-ratelimit-remaining-{name}"),
                        b.remaining(now).to_string(),
                    ),
                    (
                        format!("x-ratelimit-reset-{name}"),
                        openai_duration(b.reset_ms(now)),
                    ),
                ] {
                    if let (Ok(k), Ok(v)) = (
                        axum::http::HeaderName::try_from(key),
                        HeaderValue::from_str(&value),
                    ) {
                        headers.insert(k, v);
                    }
                }
            }
        }
        headers
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/chat/completions", post(chat))
        .route("/v1/models", get(models))
        .route("/models", get(models))
        .route("/mock/log", get(log))
        .route("/mock/script", post(script))
        .with_state(shared)
}

async fn models(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let names = shared
        .config
        .models
        .clone()
        .unwrap_or_else(|| vec!["gpt-test".into(), "gpt-4o-mini".into()]);
    let data: Vec<Value> = names
        .iter()
        .map(|id| json!({"id": id, "object": "model", "owned_by": "spool-mock-llm"}))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

async fn log(State(shared): State<Arc<Shared>>) -> Json<Vec<LoggedRequest>> {
    Json(shared.log_entries())
}

async fn script(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<StatusCode, (StatusCode, String)> {
    let responses: Vec<ScriptedResponse> = serde_json::from_slice(&body).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!("a script is a JSON list of responses: {e}"),
        )
    })?;
    shared.push_script(responses);
    Ok(StatusCode::NO_CONTENT)
}

/// An OpenAI-style error answer.
fn error(status: u16, kind: &str, code: Option<&str>, message: &str) -> (StatusCode, Value) {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
    )
}

async fn chat(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let at_ms = now_ms();
    let seq = shared.seq.fetch_add(1, Ordering::SeqCst) + 1;
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let request = parsed.clone().unwrap_or(Value::Null);
    let mut entry = LoggedRequest {
        at_ms,
        seq,
        model: request["model"].as_str().unwrap_or_default().to_string(),
        prompt_tokens: tokens::prompt_tokens(&request),
        max_tokens: tokens::max_tokens(&request),
        completion_tokens: 0,
        status: 200,
        code: None,
        request_hash: format!("{:016x}", fnv1a(&body)),
        authorized: true,
        retry_after_ms: None,
    };
    // A client that goes away while its answer is being made (killed, timed out) still
    // cost the provider: the guard logs it as 499 if the answer is never sent.
    let mut guard = Unanswered {
        shared: shared.clone(),
        entry: Some(entry.clone()),
    };
    let answer = answer(&shared, &headers, parsed, &mut entry).await;
    guard.entry = None;
    let mut response = match answer {
        Answer::Json(status, body, wait) => {
            entry.status = status.as_u16();
            entry.code = body["error"]["code"].as_str().map(str::to_string);
            let mut response = (status, Json(body)).into_response();
            if let Some(wait) = wait {
                entry.retry_after_ms = Some(wait);
                let h = response.headers_mut();
                h.insert("retry-after", HeaderValue::from(wait.div_ceil(1000)));
                h.insert("retry-after-ms", HeaderValue::from(wait));
            }
            response
        }
        Answer::Html => {
            entry.status = 502;
            (
                StatusCode::BAD_GATEWAY,
                [("content-type", "text/html")],
                "<html><body><h1>502 Bad Gateway</h1></body></html>",
            )
                .into_response()
        }
    };
    response.headers_mut().extend(shared.rate_headers(now_ms()));
    shared.record(entry);
    response
}

/// Logs a request whose handler was dropped before it answered.
struct Unanswered {
    shared: Arc<Shared>,
    entry: Option<LoggedRequest>,
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        if let Some(mut entry) = self.entry.take() {
            entry.status = 499;
            entry.code = Some("client_closed_request".into());
            self.shared.record(entry);
        }
    }
}

enum Answer {
    Json(StatusCode, Value, Option<u64>),
    Html,
}

impl From<(StatusCode, Value)> for Answer {
    fn from((status, body): (StatusCode, Value)) -> Answer {
        Answer::Json(status, body, None)
    }
}

async fn answer(
    shared: &Shared,
    headers: &HeaderMap,
    request: Option<Value>,
    entry: &mut LoggedRequest,
) -> Answer {
    let config = &shared.config;
    if let Some(key) = &config.api_key {
        let given = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(key.as_str()) {
            entry.authorized = false;
            return error(
                401,
                "invalid_request_error",
                Some("invalid_api_key"),
                "Incorrect API key provided.",
            )
            .into();
        }
    }
    let Some(request) = request.filter(|r| r["model"].is_string() && r["messages"].is_array())
    else {
        return error(
            400,
            "invalid_request_error",
            None,
            "The body must be JSON with a \"model\" and a \"messages\" list.",
        )
        .into();
    };
    let scripted = lock(&shared.script).pop_front();
    if let Some(scripted) = scripted {
        return scripted_answer(scripted);
    }
    if let Some(models) = &config.models
        && !models.contains(&entry.model)
    {
        let message = format!(
            "The model `{}` does not exist or you do not have access to it.",
            entry.model
        );
        return error(
            404,
            "invalid_request_error",
            Some("model_not_found"),
            &message,
        )
        .into();
    }
    let max = entry.max_tokens.unwrap_or(tokens::DEFAULT_MAX_TOKENS);
    let reserved = (entry.prompt_tokens + max) as f64;
    {
        let now = now_ms();
        let mut limits = lock(&shared.limits);
        if config.quota_tokens.is_some_and(|q| limits.used_tokens >= q) {
            return error(
                429,
                "insufficient_quota",
                Some("insufficient_quota"),
                "You exceeded your current quota, please check your plan and billing details.",
            )
            .into();
        }
        let wait_requests = limits
            .requests
            .as_mut()
            .map_or(0.0, |b| b.wait_ms(1.0, now));
        let wait_tokens = limits
            .tokens
            .as_mut()
            .map_or(0.0, |b| b.wait_ms(reserved, now));
        if wait_requests > 0.0 || wait_tokens > 0.0 {
            let (kind, limit) = if wait_requests >= wait_tokens {
                ("requests", limits.requests.as_ref().map_or(0, |b| b.limit))
            } else {
                ("tokens", limits.tokens.as_ref().map_or(0, |b| b.limit))
            };
            let wait = wait_requests.max(wait_tokens).ceil() as u64;
            let message = format!(
                "Rate limit reached for {kind} per min (RPM/TPM): Limit {limit}. Please try again in {}.",
                openai_duration(wait as f64)
            );
            let (status, body) = error(429, kind, Some("rate_limit_exceeded"), &message);
            return Answer::Json(status, body, Some(wait.max(1)));
        }
        if let Some(b) = limits.requests.as_mut() {
            b.take(1.0, now);
        }
        if let Some(b) = limits.tokens.as_mut() {
            b.take(reserved, now);
        }
    }
    let (delay, fails) = {
        let mut rng = lock(&shared.rng);
        let (low, high) = config.latency;
        let span = high.saturating_sub(low).as_micros() as u64;
        let delay = low + Duration::from_micros(if span == 0 { 0 } else { rng.u64(0..=span) });
        (delay, rng.f64() < config.fail_rate)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let hash = fnv1a(request.to_string().as_bytes());
    let completion = if fails {
        0
    } else {
        tokens::completion_tokens(hash, max)
    };
    {
        let now = now_ms();
        let mut limits = lock(&shared.limits);
        if let Some(b) = limits.tokens.as_mut() {
            b.give((max - completion.min(max)) as f64, now);
        }
        limits.used_tokens += entry.prompt_tokens + completion;
    }
    if fails {
        return error(
            500,
            "server_error",
            None,
            "The server had an error while processing your request. Sorry about that!",
        )
        .into();
    }
    entry.completion_tokens = completion;
    let body = json!({
        "id": format!("chatcmpl-{}", entry.seq),
        "object": "chat.completion",
        "created": (entry.at_ms / 1000.0) as u64,
        "model": entry.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": tokens::answer_text(completion)},
            "finish_reason": if completion == max { "length" } else { "stop" },
        }],
        "usage": {
            "prompt_tokens": entry.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": entry.prompt_tokens + completion,
        },
    });
    Answer::Json(StatusCode::OK, body, None)
}

fn scripted_answer(scripted: ScriptedResponse) -> Answer {
    match scripted {
        ScriptedResponse::RateLimited { retry_after_ms } => {
            let (status, body) = error(
                429,
                "requests",
                Some("rate_limit_exceeded"),
                "Rate limit reached for requests per min (RPM).",
            );
            Answer::Json(status, body, Some(retry_after_ms))
        }
        ScriptedResponse::Overloaded { retry_after_ms } => {
            let (status, body) = error(
                503,
                "server_error",
                Some("overloaded"),
                "The engine is currently overloaded, please try again later.",
            );
            Answer::Json(status, body, Some(retry_after_ms))
        }
        ScriptedResponse::InsufficientQuota => error(
            429,
            "insufficient_quota",
            Some("insufficient_quota"),
            "You exceeded your current quota, please check your plan and billing details.",
        )
        .into(),
        ScriptedResponse::ServerError => error(
            500,
            "server_error",
            None,
            "The server had an error while processing your request.",
        )
        .into(),
        ScriptedResponse::NotJson => Answer::Html,
        ScriptedResponse::Status(status) => error(
            status,
            "invalid_request_error",
            None,
            &format!("scripted status {status}"),
        )
        .into(),
    }
}

/// Now, ms since the Unix epoch with sub-millisecond precision.
fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}
