//! The `http` job: one HTTP request. 2xx is success; 429 and 503 with `Retry-After` defer the
//! job for that long without using an attempt (D-2); anything else fails with the status and
//! an excerpt of the body.

use std::{collections::BTreeMap, time::Duration};

use serde::{Deserialize, Serialize};

use super::shell::excerpt;
use crate::{Job, JobContext, JobError, JobResult};

/// Per-request time limit; keep it below the job's timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// `{"url": .., "method": .., "headers": {..}, "body": ..}`. Privileged: needs `--allow http`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http {
    /// Where to send the request (`http://`; `https://` needs the `http-tls` feature).
    pub url: String,
    /// GET unless given (or POST when there is a body).
    #[serde(default)]
    pub method: Option<String>,
    /// Request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A string is sent as is; any other JSON value is sent as JSON.
    #[serde(default)]
    pub body: Option<serde_json::Value>,
}

impl Job for Http {
    const NAME: &'static str = "http";

    async fn handle(self, _ctx: JobContext) -> JobResult {
        let method = match &self.method {
            Some(m) => reqwest::Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                .map_err(|_| JobError::fail(format!("invalid HTTP method `{m}`")))?,
            None if self.body.is_some() => reqwest::Method::POST,
            None => reqwest::Method::GET,
        };
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()?;
        let mut request = client.request(method.clone(), &self.url);
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        request = match &self.body {
            Some(serde_json::Value::String(text)) => request.body(text.clone()),
            Some(value) => request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(value.to_string()),
            None => request,
        };
        let response = request.send().await?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = response.bytes().await.unwrap_or_default();
        let message = format!("{method} {} answered HTTP {status}", self.url);
        match (status.as_u16(), retry_after) {
            (429 | 503, Some(delay)) => Err(JobError::defer(delay, message)
                .with_causes([format!("retry after {}", crate::format_duration(delay))])),
            _ => Err(JobError::retry(message).with_causes([format!("body: {}", excerpt(&body))])),
        }
    }
}

/// Longest wait a `Retry-After` can ask for: a server's answer is not trusted with more (a
/// value of 10^17 seconds once overflowed a store's clock).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// `Retry-After` is either seconds or an HTTP date; capped at [`MAX_RETRY_AFTER`]. A number too
/// big for `u64` is the cap too.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    let wait = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        value
            .parse::<u64>()
            .map_or(MAX_RETRY_AFTER, Duration::from_secs)
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default()
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn retry_after_is_capped() {
        for huge in [
            "99999999999999999",
            "999999999999999999999999",
            "Fri, 31 Dec 9999 23:59:59 GMT",
        ] {
            assert_eq!(parse_retry_after(huge), Some(MAX_RETRY_AFTER), "{huge}");
        }
    }
}
