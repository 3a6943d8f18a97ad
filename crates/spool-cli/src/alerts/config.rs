//! `[[alert]]` as written in `spool.toml`, and its checking: every mistake is refused naming
//! the entry and key (the file reader adds the line).

use std::time::Duration;

use serde::Deserialize;

use super::Alert;

/// The longest alert window: minute metrics are kept 48 hours.
const MAX_WINDOW: Duration = Duration::from_secs(48 * 3600);

/// An `[[alert]]` entry as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AlertSection {
    name: String,
    webhook: String,
    queue: Option<String>,
    window: Option<String>,
    wait_p95: Option<String>,
    oldest_ready: Option<String>,
    failure_rate: Option<f64>,
    #[serde(default)]
    no_worker: bool,
    #[serde(default)]
    pool_failed: bool,
}

/// Checks the entries; an error names the entry's index and key.
pub(crate) fn check(
    sections: &[AlertSection],
) -> Result<Vec<Alert>, (usize, &'static str, String)> {
    let mut out: Vec<Alert> = Vec::new();
    for (i, a) in sections.iter().enumerate() {
        let fail = |key: &'static str, why: String| (i, key, format!("alert `{}`: {why}", a.name));
        if a.name.trim().is_empty() {
            return Err(fail("name", "the name is empty".into()));
        }
        if out.iter().any(|o| o.name == a.name) {
            return Err(fail("name", "the name is used twice".into()));
        }
        check_webhook(&a.webhook).map_err(|why| fail("webhook", why))?;
        let duration = |key: &'static str, text: &Option<String>| {
            text.as_deref()
                .map(|t| spool::parse_duration(t).map_err(|e| fail(key, e.to_string())))
                .transpose()
        };
        let window = duration("window", &a.window)?.unwrap_or(Duration::from_secs(300));
        if window.is_zero() || window > MAX_WINDOW {
            return Err(fail("window", "the window must be from 1s to 48h".into()));
        }
        if let Some(rate) = a.failure_rate
            && !(0.0..1.0).contains(&rate)
        {
            return Err(fail(
                "failure_rate",
                format!("{rate} is not a rate: give a fraction such as 0.05 (5 %)"),
            ));
        }
        let alert = Alert {
            name: a.name.clone(),
            webhook: a.webhook.clone(),
            queue: a.queue.clone(),
            window,
            wait_p95: duration("wait_p95", &a.wait_p95)?,
            oldest_ready: duration("oldest_ready", &a.oldest_ready)?,
            failure_rate: a.failure_rate,
            no_worker: a.no_worker,
            pool_failed: a.pool_failed,
        };
        let conditions = [
            alert.wait_p95.is_some(),
            alert.oldest_ready.is_some(),
            alert.failure_rate.is_some(),
            alert.no_worker,
            alert.pool_failed,
        ];
        if !conditions.contains(&true) {
            return Err(fail(
                "name",
                "no condition: set wait_p95, oldest_ready, failure_rate, no_worker or pool_failed"
                    .into(),
            ));
        }
        out.push(alert);
    }
    Ok(out)
}

/// A webhook this build can post to: `http://`, or `https://` when built with TLS.
fn check_webhook(url: &str) -> Result<(), String> {
    if !cfg!(feature = "http") {
        return Err(
            "this build of spool has no HTTP client to post alerts with (the `http` feature)"
                .into(),
        );
    }
    if url.starts_with("https://") {
        if cfg!(feature = "https") {
            return Ok(());
        }
        return Err(format!(
            "`{url}` needs HTTPS, which this build of spool lacks: build it with `--features https`, or post to an http:// relay"
        ));
    }
    if url.starts_with("http://") && url.len() > "http://".len() {
        return Ok(());
    }
    Err(format!("`{url}` is not an http:// or https:// URL"))
}
