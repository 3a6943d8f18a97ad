//! The language model: an OpenAI-compatible chat-completions call, or an offline stand-in.

use std::time::Duration;

use serde_json::json;
use spool::JobError;

/// The model client: built once when the worker starts and registered as app state, so every
/// job shares one connection pool (`ctx.state::<Llm>()`).
pub(crate) struct Llm {
    client: reqwest::Client,
    /// `LLM_BASE_URL`; without it, an offline stand-in answers.
    base: Option<String>,
    model: String,
    /// `LLM_API_KEY`, read from the worker's environment, never from a job's payload.
    key: Option<String>,
}

impl Llm {
    /// The client as the environment configures it.
    pub(crate) fn from_env() -> Llm {
        Llm {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .expect("an HTTP client with default settings builds"),
            base: std::env::var("LLM_BASE_URL").ok(),
            model: std::env::var("LLM_MODEL").unwrap_or_else(|_| "gpt-4o-mini".into()),
            key: std::env::var("LLM_API_KEY").ok(),
        }
    }

    /// Asks the model to write `prompt`'s answer. A 429 or 503 with `Retry-After` becomes a
    /// deferral (no attempt used); other failures are retried per the job's backoff.
    pub(crate) async fn complete(&self, prompt: &str) -> Result<String, JobError> {
        let Some(base) = &self.base else {
            return Ok(stand_in(prompt).await);
        };
        let mut request = self
            .client
            .post(format!("{}/chat/completions", base.trim_end_matches('/')))
            .json(&json!({
                "model": self.model,
                "messages": [{"role": "user", "content": prompt}],
            }));
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await?;
        let status = response.status();
        if status.as_u16() == 429 || status.as_u16() == 503 {
            let wait = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(30);
            return Err(JobError::defer(
                Duration::from_secs(wait),
                format!("the model answered {status}"),
            ));
        }
        if !status.is_success() {
            return Err(JobError::retry(format!("the model answered {status}")));
        }
        let body: serde_json::Value = response.json().await?;
        body["choices"][0]["message"]["content"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| JobError::fail("the model's answer has no choices[0].message.content"))
    }
}

/// Answers like a model would, after 50 to 150 ms.
async fn stand_in(prompt: &str) -> String {
    let ms = 50 + (prompt.len() as u64 * 7919) % 100;
    tokio::time::sleep(Duration::from_millis(ms)).await;
    format!("# Draft\n\n(written offline for: {prompt})\n")
}
