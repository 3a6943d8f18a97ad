//! The `http` job: one HTTP request. 2xx is success; 429 and 503 with `Retry-After` defer the
//! job for that long without using an attempt (D-2); anything else fails with the status and
//! an excerpt of the body.
//!
//! Redirects are followed only within the request's origin (scheme, host and port), so the
//! job's headers, API keys included, never reach another host. Targets are limited by the
//! worker's [`HttpPolicy`]; URLs are shown without credentials or query strings.

use std::{collections::BTreeMap, time::Duration};

use serde::{Deserialize, Serialize};

use super::{secrets::is_worker_secret, shell::excerpt};
use crate::{Job, JobContext, JobError, JobResult};

mod policy;

pub use policy::HttpPolicy;
use policy::{LinkLocalRefused, redact_url};

/// Per-request time limit; keep it below the job's timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Redirects followed within one origin before the job fails.
const MAX_REDIRECTS: usize = 10;

/// The most of an error reply's body that is read (the record keeps an excerpt of it).
const BODY_EXCERPT: usize = 4 * 1024;

/// `{"url": .., "method": .., "headers": {..}, "body": ..}`. Privileged: needs `--allow http`.
///
/// A header's value is a string, or `{"env": "NAME"}` to take it from the worker's
/// environment variable `NAME` when the job runs, so a secret never sits in the store
/// (Spool's own secrets, see [`WORKER_SECRETS`](super::WORKER_SECRETS), are refused).
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
    pub headers: BTreeMap<String, HeaderValue>,
    /// A string is sent as is; any other JSON value is sent as JSON.
    #[serde(default)]
    pub body: Option<serde_json::Value>,
}

/// A header value in an [`Http`] job: literal, or read from the worker's environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HeaderValue {
    /// Sent as given.
    Text(String),
    /// `{"env": "NAME"}`: the value of the worker's environment variable `NAME`.
    Env {
        /// The variable's name.
        env: String,
    },
}

impl From<&str> for HeaderValue {
    fn from(text: &str) -> Self {
        HeaderValue::Text(text.to_string())
    }
}

impl HeaderValue {
    fn resolve(&self, header: &str) -> Result<String, JobError> {
        match self {
            HeaderValue::Text(text) => Ok(text.clone()),
            HeaderValue::Env { env } if is_worker_secret(env) => Err(JobError::fail(format!(
                "header `{header}` asks for `{env}`, one of Spool's own secrets, which jobs \
                 cannot read"
            ))),
            HeaderValue::Env { env } => std::env::var(env).map_err(|_| {
                JobError::fail(format!(
                    "header `{header}` takes its value from `{env}`, which is not set in the \
                     worker's environment: set it where the worker runs"
                ))
            }),
        }
    }
}

impl Job for Http {
    const NAME: &'static str = "http";

    async fn handle(self, ctx: JobContext) -> JobResult {
        let shown = redact_url(&self.url);
        let method = match &self.method {
            Some(m) => reqwest::Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                .map_err(|_| JobError::fail(format!("invalid HTTP method `{m}`")))?,
            None if self.body.is_some() => reqwest::Method::POST,
            None => reqwest::Method::GET,
        };
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| JobError::fail(format!("invalid URL `{shown}`: {e}")))?;
        let policy = ctx.state::<HttpPolicy>().cloned().unwrap_or_default();
        if let Some(why) = policy.refusal(&url) {
            return Err(JobError::fail(format!("{method} {shown} refused: {why}")));
        }
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .redirect(same_origin_redirects())
            .dns_resolver(policy.resolver())
            .build()
            .map_err(|e| request_error(&method, &shown, e))?;
        let mut request = client.request(method.clone(), url);
        for (name, value) in &self.headers {
            request = request.header(name, value.resolve(name)?);
        }
        request = match &self.body {
            Some(serde_json::Value::String(text)) => request.body(text.clone()),
            Some(value) => request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(value.to_string()),
            None => request,
        };
        let mut response = request
            .send()
            .await
            .map_err(|e| request_error(&method, &shown, e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        if status.is_redirection()
            && let Some(location) = response.headers().get(reqwest::header::LOCATION)
        {
            let target = location.to_str().unwrap_or("?");
            return Err(JobError::fail(format!(
                "{method} {shown} redirected to another origin ({}); the http job follows \
                 redirects only within the same scheme, host and port, so its headers never \
                 reach another host: dispatch the final URL",
                redact_url(target)
            )));
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let message = format!("{method} {shown} answered HTTP {status}");
        match (status.as_u16(), retry_after) {
            (429 | 503, Some(delay)) => Err(JobError::defer(delay, message)
                .with_causes([format!("retry after {}", crate::format_duration(delay))])),
            _ => {
                let body = excerpt(&body_start(&mut response).await);
                // An empty body says nothing: no `body:` cause then.
                let causes = (!body.is_empty()).then(|| format!("body: {body}"));
                Err(JobError::retry(message).with_causes(causes))
            }
        }
    }
}

/// Follows a redirect only to the origin of the first request (at most [`MAX_REDIRECTS`]);
/// any other is not followed, and its 3xx reply is what the job sees.
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let first = attempt.previous().first().map(|u| u.origin());
        if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
        } else if first.is_some_and(|o| o == attempt.url().origin()) {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

/// Reads at most [`BODY_EXCERPT`] bytes (plus the rest of the chunk that crosses it), however
/// large the reply: a failure record needs only its start.
async fn body_start(response: &mut reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() <= BODY_EXCERPT {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    body
}

/// A request that got no reply, said without the URL's credentials or query. A host refused
/// by the worker's policy fails for good; anything else is retried.
fn request_error(method: &reqwest::Method, shown: &str, err: reqwest::Error) -> JobError {
    let err = err.without_url();
    let causes = crate::cause_chain(&err);
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<LinkLocalRefused>() {
            return JobError::fail(format!("{method} {shown} refused: {refused}"));
        }
        source = e.source();
    }
    JobError::retry(format!("{method} {shown}: {err}")).with_causes(causes)
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

    #[test]
    fn header_values_are_text_or_an_environment_variable() {
        let job: Http = serde_json::from_str(
            r#"{"url":"http://h/","headers":{"a":"1","x-api-key":{"env":"HOOK_KEY"}}}"#,
        )
        .unwrap();
        assert_eq!(job.headers["a"], HeaderValue::from("1"));
        assert_eq!(
            job.headers["x-api-key"],
            HeaderValue::Env {
                env: "HOOK_KEY".into()
            }
        );
        let secret = HeaderValue::Env {
            env: "SPOOL_KEY".into(),
        };
        assert!(
            secret
                .resolve("x")
                .unwrap_err()
                .message()
                .contains("Spool's own secrets")
        );
    }
}
