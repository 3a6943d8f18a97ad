//! Posting an alert: JSON with a Slack-compatible `text` field, plus the alert's name, state
//! and reasons for any other receiver.

use std::time::Duration;

use super::rule::{Alert, Post};

/// The HTTP client alerts post with.
#[derive(Debug, Clone)]
pub(crate) struct Client(reqwest::Client);

pub(crate) fn client() -> Client {
    Client(
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("a client with a timeout builds"),
    )
}

impl Client {
    /// Posts `post` for `alert`; an answer other than 2xx is an error.
    pub(crate) async fn post(
        &self,
        alert: &Alert,
        post: Post,
        reasons: &[String],
    ) -> Result<(), String> {
        let (state, text) = match post {
            Post::Firing => (
                "firing",
                format!("Spool alert `{}`: {}", alert.name, reasons.join("; ")),
            ),
            Post::Resolved => ("resolved", format!("Spool alert `{}` cleared", alert.name)),
        };
        let body = serde_json::json!({
            "text": text,
            "alert": alert.name,
            "state": state,
            "reasons": reasons,
        });
        let response = self
            .0
            .post(&alert.webhook)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("the webhook answered {}", response.status()))
        }
    }
}
