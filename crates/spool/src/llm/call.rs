//! One request to a provider's `/chat/completions`, and what its answer means for the job:
//! an answer, a pause (a retryable 429, or a 503 with a wait), a spent quota, a configuration
//! error, or a passing failure.

use std::time::Duration;

use serde_json::Value;

use super::{admission::Cost, headers::Signals, provider::ProviderConfig};

/// Per-request time limit; keep the job's timeout above it.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// How much of an unexpected body an error quotes.
const EXCERPT: usize = 300;

/// Error codes of a 429 that waiting will not cure.
const QUOTA_CODES: [&str; 4] = [
    "insufficient_quota",
    "billing_hard_limit_reached",
    "billing_not_active",
    "access_terminated",
];

/// A successful answer.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    /// The whole response body.
    pub(crate) body: Value,
    /// What the answer's `usage` says was used (the estimate where it says nothing).
    pub(crate) used: Cost,
}

/// What one request came to.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// 2xx with a JSON body.
    Answer(Reply),
    /// Wait this long before anything more is sent on the key.
    Pause { wait_ms: u64, reason: String },
    /// The key's quota or spend cap is used up; nothing more until an operator resumes it.
    Quota(String),
    /// The request or the provider's configuration is wrong; retrying will not help.
    Config(String),
    /// Worth another attempt, after the job's backoff.
    Transient(String),
}

/// Sends `body` to `provider` with `key`.
pub(crate) async fn send(
    http: &reqwest::Client,
    provider: &ProviderConfig,
    key: Option<&str>,
    body: &Value,
    estimate: Cost,
) -> (Outcome, Signals) {
    let url = format!(
        "{}/chat/completions",
        provider.base_url.trim_end_matches('/')
    );
    let mut request = http.post(&url).json(body).timeout(REQUEST_TIMEOUT);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let name = &provider.name;
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => {
            let what = if e.is_timeout() {
                "timed out"
            } else {
                "failed"
            };
            return (
                Outcome::Transient(format!(
                    "calling provider `{name}` {what}: {}",
                    e.without_url()
                )),
                Signals::default(),
            );
        }
    };
    let status = response.status().as_u16();
    let signals = Signals::read(response.headers(), crate::now_ms());
    let text = match response.text().await {
        Ok(text) => text,
        Err(e) => {
            return (
                Outcome::Transient(format!(
                    "reading provider `{name}`'s answer ({status}) failed: {}",
                    e.without_url()
                )),
                signals,
            );
        }
    };
    let json: Option<Value> = serde_json::from_str(&text).ok();
    let outcome = classify(name, status, json, &text, &signals, estimate);
    (outcome, signals)
}

/// What an answer means.
fn classify(
    name: &str,
    status: u16,
    json: Option<Value>,
    text: &str,
    signals: &Signals,
    estimate: Cost,
) -> Outcome {
    let error = json.as_ref().map(|j| &j["error"]);
    let code = error
        .and_then(|e| e["code"].as_str().or_else(|| e["type"].as_str()))
        .unwrap_or_default()
        .to_string();
    let message = error
        .and_then(|e| e["message"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| excerpt(text));
    let said = if code.is_empty() {
        format!("provider `{name}` answered {status}: {message}")
    } else {
        format!("provider `{name}` answered {status} {code}: {message}")
    };
    match status {
        200..=299 => match json {
            Some(body) => {
                let usage = &body["usage"];
                let used = Cost {
                    input: usage["prompt_tokens"].as_u64().unwrap_or(estimate.input),
                    output: usage["completion_tokens"]
                        .as_u64()
                        .unwrap_or(estimate.output),
                };
                Outcome::Answer(Reply { body, used })
            }
            None => Outcome::Transient(format!(
                "provider `{name}` answered {status} with a body that is not JSON: {}",
                excerpt(text)
            )),
        },
        429 if QUOTA_CODES.contains(&code.as_str())
            || error.is_some_and(|e| e["type"].as_str() == Some("insufficient_quota")) =>
        {
            Outcome::Quota(said)
        }
        429 => Outcome::Pause {
            wait_ms: signals
                .retry_after_ms
                .or(signals.reset_requests_ms.max(signals.reset_tokens_ms))
                .unwrap_or(1_000)
                .max(1),
            reason: said,
        },
        503 if signals.retry_after_ms.is_some() => Outcome::Pause {
            wait_ms: signals.retry_after_ms.unwrap_or(1_000).max(1),
            reason: said,
        },
        400 | 401 | 403 | 404 | 422 => Outcome::Config(said),
        _ if json.is_none() => Outcome::Transient(format!(
            "provider `{name}` answered {status} with a body that is not JSON: {}",
            excerpt(text)
        )),
        _ => Outcome::Transient(said),
    }
}

/// The start of a body, on one line.
fn excerpt(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(EXCERPT) {
        Some((at, _)) => format!("{}…", &flat[..at]),
        None => flat,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn outcome(status: u16, body: &str, signals: Signals) -> Outcome {
        let json = serde_json::from_str(body).ok();
        classify(
            "openai",
            status,
            json,
            body,
            &signals,
            Cost {
                input: 5,
                output: 7,
            },
        )
    }

    #[test]
    fn answers_carry_their_usage() {
        let body = json!({"choices": [{"message": {"content": "hi"}}], "usage": {"prompt_tokens": 3, "completion_tokens": 4}});
        match outcome(200, &body.to_string(), Signals::default()) {
            Outcome::Answer(reply) => assert_eq!(
                reply.used,
                Cost {
                    input: 3,
                    output: 4
                }
            ),
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(outcome(200, "<html>", Signals::default()), Outcome::Transient(m) if m.contains("not JSON: <html>"))
        );
    }

    #[test]
    fn a_429_pauses_or_blocks_by_its_code() {
        let limited =
            json!({"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}});
        let wait = Signals {
            retry_after_ms: Some(1500),
            ..Signals::default()
        };
        match outcome(429, &limited.to_string(), wait) {
            Outcome::Pause { wait_ms, reason } => {
                assert_eq!(wait_ms, 1500);
                assert!(
                    reason.contains("429 rate_limit_exceeded: Rate limit reached"),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
        let quota = json!({"error": {"message": "You exceeded your current quota", "type": "insufficient_quota", "code": "insufficient_quota"}});
        assert!(
            matches!(outcome(429, &quota.to_string(), Signals::default()), Outcome::Quota(m) if m.contains("exceeded your current quota"))
        );
    }

    #[test]
    fn configuration_errors_fail_and_the_rest_retry() {
        let missing = json!({"error": {"message": "The model `nope` does not exist", "code": "model_not_found"}});
        assert!(matches!(
            outcome(404, &missing.to_string(), Signals::default()),
            Outcome::Config(_)
        ));
        assert!(matches!(
            outcome(500, "{}", Signals::default()),
            Outcome::Transient(_)
        ));
        assert!(
            matches!(outcome(503, "busy", Signals::default()), Outcome::Transient(m) if m.contains("busy"))
        );
        let later = Signals {
            retry_after_ms: Some(2000),
            ..Signals::default()
        };
        assert!(matches!(
            outcome(503, "busy", later),
            Outcome::Pause { wait_ms: 2000, .. }
        ));
    }
}
