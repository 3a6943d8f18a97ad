//! `spool llm status` and `spool llm resume`: the language-model provider keys every worker
//! shares through the store.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use spool::{Store, llm::Llm};

use crate::CliError;

/// `spool llm ...`
#[derive(Debug, Args)]
pub(crate) struct LlmArgs {
    #[command(subcommand)]
    command: LlmCommand,
}

#[derive(Debug, Subcommand)]
enum LlmCommand {
    /// Each provider key: limits (configured, and as the provider's headers lowered them),
    /// paused-until, blocked reason, use today, 429s and cache hits.
    Status {
        /// One JSON object, `{"providers": [...]}`.
        #[arg(long)]
        json: bool,
    },
    /// Let calls go out on a provider's keys again after a spent quota blocked them (or a
    /// pause that should end now).
    Resume {
        /// The provider's name.
        provider: String,
    },
}

pub(crate) async fn run(
    store: std::sync::Arc<dyn Store>,
    llm: Llm,
    args: LlmArgs,
) -> Result<ExitCode, CliError> {
    match args.command {
        LlmCommand::Status { json } => status(&*store, &llm, json).await,
        LlmCommand::Resume { provider } => {
            llm.provider(Some(&provider)).map_err(CliError::Usage)?;
            let resumed = llm.resume(&*store, &provider).await?;
            if resumed.is_empty() {
                println!("provider `{provider}` was neither blocked nor paused");
            } else {
                println!("resumed: {}", resumed.join(", "));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn status(store: &dyn Store, llm: &Llm, json: bool) -> Result<ExitCode, CliError> {
    let keys = llm.status(store).await?;
    if json {
        println!("{}", serde_json::json!({ "providers": keys }));
        return Ok(ExitCode::SUCCESS);
    }
    let now = spool::now_ms();
    println!(
        "{:<24} {:>9} {:>11} {:>9} {:>12} {:>6} {:>6}  STATE",
        "PROVIDER KEY", "RPM", "TPM", "REQ TODAY", "TOKENS TODAY", "429S", "CACHED"
    );
    let limit = |configured: Option<u64>, effective: Option<u64>| match (configured, effective) {
        (_, None) => "-".to_string(),
        (Some(c), Some(e)) if e < c => format!("{e} (of {c})"),
        (_, Some(e)) => e.to_string(),
    };
    for key in keys {
        let state = match (&key.blocked, key.parked_until_ms) {
            (Some(why), _) => format!("blocked: {why}"),
            (None, Some(until)) => format!("paused for {} ms", until - now),
            (None, None) => "ok".to_string(),
        };
        println!(
            "{:<24} {:>9} {:>11} {:>9} {:>12} {:>6} {:>6}  {state}",
            key.key,
            limit(key.rpm, key.effective_rpm),
            limit(key.tpm, key.effective_tpm),
            key.state.requests_today,
            key.state.tokens_today,
            key.state.http_429,
            key.state.cache_hits,
        );
    }
    Ok(ExitCode::SUCCESS)
}
