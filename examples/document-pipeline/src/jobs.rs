//! The pipeline's jobs.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use spool::{
    Job, JobContext, JobError, JobOptions, JobResult, Spool, Unique,
    middleware::{Middleware, RateLimited},
};

/// Where generated documents are written.
pub(crate) const OUT_DIR: &str = "pipeline-out";

/// Stores the uploaded documents (here: records that they arrived).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Upload {
    /// Document ids.
    pub documents: Vec<u64>,
}

/// Works out what each document needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Analyse {
    /// Document ids.
    pub documents: Vec<u64>,
}

/// Estimates the cost before spending it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Estimate {
    /// Document ids.
    pub documents: Vec<u64>,
}

/// Fans the documents out as one batch of [`Generate`] jobs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct GenerateAll {
    /// Document ids.
    pub documents: Vec<u64>,
}

/// Generates one document with the language model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Generate {
    /// The document.
    pub document: u64,
}

/// Tells someone how it went (here: prints it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Notify {
    /// What to say.
    pub message: String,
}

impl Job for Upload {
    const NAME: &'static str = "pipeline.upload";
    async fn handle(self, ctx: JobContext) -> JobResult {
        ctx.set_result(&serde_json::json!({ "uploaded": self.documents.len() }))?;
        Ok(())
    }
}

impl Job for Analyse {
    const NAME: &'static str = "pipeline.analyse";
    async fn handle(self, ctx: JobContext) -> JobResult {
        for (i, _) in self.documents.iter().enumerate() {
            let percent = ((i + 1) * 100 / self.documents.len().max(1)) as u8;
            ctx.progress(percent, None).await?;
        }
        Ok(())
    }
}

impl Job for Estimate {
    const NAME: &'static str = "pipeline.estimate";
    async fn handle(self, ctx: JobContext) -> JobResult {
        // One model call per document, about 1,500 tokens each.
        ctx.set_result(&serde_json::json!({ "calls": self.documents.len(), "tokens": self.documents.len() * 1500 }))?;
        Ok(())
    }
}

impl Job for GenerateAll {
    const NAME: &'static str = "pipeline.generate_all";
    async fn handle(self, ctx: JobContext) -> JobResult {
        let store = ctx
            .store()
            .ok_or_else(|| JobError::fail("runs under a worker"))?
            .clone();
        let spool = Spool::new(store);
        spool
            .batch(format!("generate {} documents", self.documents.len()))
            .jobs(self.documents.iter().map(|&document| Generate { document }))
            .map_err(JobError::fail)?
            .allow_failures()
            .finally(Notify {
                message: "all documents generated".into(),
            })
            .map_err(JobError::fail)?
            .on_queue(ctx.queue())
            .dispatch()
            .await
            .map_err(JobError::retry)?;
        Ok(())
    }
}

impl Job for Generate {
    const NAME: &'static str = "pipeline.generate";

    fn options(&self) -> JobOptions {
        JobOptions {
            tries: Some(5),
            timeout: Some(Duration::from_secs(180)),
            // One generation per document at a time, even if dispatched twice.
            unique: Some(
                Unique::new(format!("document:{}", self.document))
                    .for_at_most(Duration::from_secs(3600)),
            ),
            ..JobOptions::default()
        }
    }

    fn middleware(&self) -> Vec<Box<dyn Middleware>> {
        // The provider's limit, shared by every worker on every machine.
        vec![Box::new(RateLimited::new(
            "llm",
            60,
            Duration::from_secs(60),
        ))]
    }

    async fn handle(self, ctx: JobContext) -> JobResult {
        ctx.progress(10, Some("asking the model".to_string()))
            .await?;
        // The app's one client, registered with the worker (`Registry::with_state`).
        let llm = ctx.state::<crate::llm::Llm>()?;
        let text = llm
            .complete(&format!(
                "Write a one-page summary of document {}.",
                self.document
            ))
            .await?;
        let path = format!("{OUT_DIR}/document-{}.md", self.document);
        tokio::fs::write(&path, &text).await?;
        ctx.set_result(&serde_json::json!({ "path": path, "bytes": text.len() }))?;
        Ok(())
    }
}

impl Job for Notify {
    const NAME: &'static str = "pipeline.notify";
    async fn handle(self, ctx: JobContext) -> JobResult {
        // A batch callback knows its batch.
        match ctx.batch_id() {
            Some(batch) => println!("notify: {} (batch {batch})", self.message),
            None => println!("notify: {}", self.message),
        }
        Ok(())
    }
}
