//! The built-in `llm` job: one chat completion, its answer kept as the job's result.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::{Job, JobContext, JobResult};

/// `{"provider"?, "model", "messages", "max_tokens"?, "temperature"?, ...}`, passed through
/// to `/chat/completions`; the answer's content and usage become the job's result
/// (`spool job ID --json`). Privileged (D-9): it runs only on workers started with
/// `--allow llm`, so whoever can write to the store cannot spend the key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LlmJob {
    /// The request.
    pub request: Map<String, Value>,
}

impl Job for LlmJob {
    const NAME: &'static str = "llm";

    async fn handle(self, ctx: JobContext) -> JobResult {
        let answer = ctx.llm().chat(Value::Object(self.request)).await?;
        ctx.set_result(&json!({
            "provider": answer.provider,
            "model": answer.model,
            "content": answer.content,
            "usage": {
                "prompt_tokens": answer.usage.input,
                "completion_tokens": answer.usage.output,
            },
            "replayed": answer.replayed,
        }))?;
        Ok(())
    }
}
