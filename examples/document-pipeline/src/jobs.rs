//! The two steps of a document, chained: analyse (an outline), then generate (the text from
//! the outline). Each calls the model through `ctx.llm()`, under the provider's limits shared
//! by every worker; a retried step replays the answer it already paid for.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use spool::{Backoff, Job, JobContext, JobError, JobFailure, JobOptions, JobResult};

use crate::documents::{self, Document};

/// The model the documents are written with (`PIPELINE_MODEL`).
pub(crate) fn model() -> String {
    std::env::var("PIPELINE_MODEL").unwrap_or_else(|_| "gpt-4o-mini".into())
}

/// Step 1: an outline of the document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Analyse {
    pub(crate) document: String,
}

/// Step 2: the document, written from its outline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Generate {
    pub(crate) document: String,
}

/// Seed 000's retries, scaled from seconds to tenths of a second so the demo runs in
/// seconds: `[30, 60, 120]` works as written in production.
fn options() -> JobOptions {
    JobOptions {
        tries: Some(4),
        backoff: Some(Backoff::List(vec![
            Duration::from_millis(300),
            Duration::from_millis(600),
            Duration::from_millis(1200),
        ])),
        timeout: Some(Duration::from_secs(180)),
        ..JobOptions::default()
    }
}

fn store(ctx: &JobContext) -> Result<std::sync::Arc<dyn spool::Store>, JobError> {
    ctx.store()
        .cloned()
        .ok_or_else(|| JobError::fail("the pipeline's jobs run under a worker"))
}

async fn mark(ctx: &JobContext, id: &str, change: impl Fn(&mut Document)) -> JobResult {
    documents::update(&store(ctx)?, id, change)
        .await
        .map_err(|e| JobError::retry(format!("updating document {id}: {e}")))
}

/// Marks the document as in `state` at this attempt; the document.
async fn begin(
    ctx: &JobContext,
    id: &str,
    state: &str,
    progress: u8,
) -> Result<Document, JobError> {
    let attempt = ctx.attempt();
    mark(ctx, id, |d| {
        d.state = state.to_string();
        d.attempts = attempt;
        d.progress = progress;
    })
    .await?;
    documents::load(&store(ctx)?, id)
        .await
        .map_err(JobError::retry)?
        .ok_or_else(|| JobError::fail(format!("no document {id}")))
}

/// Marks the document failed, with the step's error.
async fn failed(ctx: &JobContext, id: &str, error: &JobFailure) {
    let _ = mark(ctx, id, |d| {
        d.state = "failed".into();
        d.error = Some(error.error.clone());
    })
    .await;
}

impl Job for Analyse {
    const NAME: &'static str = "pipeline.analyse";

    fn queue(&self) -> &str {
        "documents"
    }

    fn options(&self) -> JobOptions {
        options()
    }

    async fn handle(self, ctx: JobContext) -> JobResult {
        let doc = begin(&ctx, &self.document, "analysing", 10).await?;
        let answer = ctx
            .llm()
            .chat(json!({
                "model": model(),
                "messages": [
                    {"role": "system", "content": "You plan technical documents."},
                    {"role": "user", "content": format!("Outline a document titled \"{}\" in five headings.", doc.title)},
                ],
                "max_tokens": 150,
            }))
            .await?;
        mark(&ctx, &self.document, |d| {
            d.outline = Some(answer.content.clone());
            d.progress = 50;
        })
        .await
    }

    async fn failed(self, ctx: JobContext, error: &JobFailure) {
        failed(&ctx, &self.document, error).await;
    }
}

impl Job for Generate {
    const NAME: &'static str = "pipeline.generate";

    fn queue(&self) -> &str {
        "documents"
    }

    fn options(&self) -> JobOptions {
        options()
    }

    async fn handle(self, ctx: JobContext) -> JobResult {
        let doc = begin(&ctx, &self.document, "generating", 60).await?;
        let answer = ctx
            .llm()
            .chat(json!({
                "model": model(),
                "messages": [
                    {"role": "system", "content": "You write clear technical documents."},
                    {"role": "user", "content": format!(
                        "Write the document \"{}\" from this outline:\n{}",
                        doc.title,
                        doc.outline.unwrap_or_default()
                    )},
                ],
                "max_tokens": 600,
            }))
            .await?;
        let now = spool::now_ms();
        mark(&ctx, &self.document, |d| {
            d.state = "done".into();
            d.progress = 100;
            d.result = Some(answer.content.clone());
            d.finished_ms = Some(now);
        })
        .await
    }

    async fn failed(self, ctx: JobContext, error: &JobFailure) {
        failed(&ctx, &self.document, error).await;
    }
}
