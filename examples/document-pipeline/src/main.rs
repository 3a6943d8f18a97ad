//! A document pipeline on Spool, the seeds' headline use case.
//!
//! `upload → analyse → estimate → generate` runs as a chain; the generate step fans the
//! documents out as a **batch** whose progress this program prints while a worker runs it.
//! Every document's generation holds a unique lock (`document:N`), so a document is never
//! generated twice at once, and every call to the language model goes through one
//! **60 requests/minute** limit shared by all workers.
//!
//! The model is any OpenAI-compatible chat-completions API: set `LLM_BASE_URL` (e.g.
//! `https://api.openai.com/v1`), `LLM_API_KEY` and `LLM_MODEL`. Without `LLM_BASE_URL` a local
//! stand-in answers after a short, random delay, so the example runs offline.
//!
//! ```text
//! cargo run -p document-pipeline              # 8 documents on ./pipeline.db
//! cargo run -p document-pipeline -- 20        # 20 documents
//! ```

mod jobs;
mod llm;

use std::time::Duration;

use anyhow::Context;
use spool::{Registry, Spool, Worker, WorkerConfig};

use jobs::{Analyse, Estimate, Generate, GenerateAll, Notify, Upload};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let documents: u64 = match std::env::args().nth(1) {
        Some(n) => n
            .parse()
            .context("the argument is the number of documents")?,
        None => 8,
    };
    let url = std::env::var("SPOOL_URL").unwrap_or_else(|_| "sqlite://pipeline.db".into());
    let store = spool::connect(&url).await?;
    let spool = Spool::new(store.clone());
    std::fs::create_dir_all(jobs::OUT_DIR)?;

    let ids: Vec<u64> = (1..=documents).collect();
    spool
        .chain()
        .then(Upload {
            documents: ids.clone(),
        })?
        .then(Analyse {
            documents: ids.clone(),
        })?
        .then(Estimate {
            documents: ids.clone(),
        })?
        .then(GenerateAll { documents: ids })?
        .catch(Notify {
            message: "the pipeline failed".into(),
        })?
        .on_queue("documents")
        .dispatch()
        .await?;
    println!("pipeline queued for {documents} documents (store: {url})");

    let registry = Registry::new()
        .register::<Upload>()
        .register::<Analyse>()
        .register::<Estimate>()
        .register::<GenerateAll>()
        .register::<Generate>()
        .register::<Notify>()
        // Shared by every job: one HTTP client (and its connection pool) for the model.
        .with_state(llm::Llm::from_env());
    let config = WorkerConfig {
        queues: vec!["documents".into()],
        concurrency: 8,
        until_done: true,
        sleep: Duration::from_millis(100),
        ..WorkerConfig::default()
    };
    let worker = tokio::spawn(Worker::new(store.clone(), registry, config).run());

    // Show the batch's progress while the worker runs it.
    let mut last = None;
    while !worker.is_finished() {
        if let Some(batch) = store.batches(1).await?.into_iter().next() {
            let now = (batch.progress, batch.failed);
            if last != Some(now) {
                println!(
                    "batch {}: {}% ({} of {} pending, {} failed)",
                    batch.name, batch.progress, batch.pending, batch.total, batch.failed
                );
                last = Some(now);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    worker.await??;
    let failed = store.stats().await?.failed;
    println!(
        "done: documents are in ./{}/ ({failed} failed job(s); see `spool failed`)",
        jobs::OUT_DIR
    );
    Ok(())
}
