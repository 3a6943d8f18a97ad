//! `spool mock-llm`: an offline OpenAI-compatible server with real token buckets, for tests,
//! demos and `spool bench --workload llm` (see docs/mock-llm.md).

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use clap::Args;
use spool_mock_llm::{MockConfig, MockLlm};

use crate::CliError;

/// `spool mock-llm ...`
#[derive(Debug, Args)]
pub(crate) struct MockLlmArgs {
    /// Where to listen (port 0: any free port; the first line printed names it).
    #[arg(long, default_value = "127.0.0.1:7080")]
    bind: SocketAddr,
    /// Requests per minute (none: no limit).
    #[arg(long)]
    rpm: Option<u64>,
    /// Tokens per minute: prompt tokens plus max_tokens are reserved at admission.
    #[arg(long)]
    tpm: Option<u64>,
    /// Answer delay: `450ms`, or a range drawn uniformly, `40ms..120ms`.
    #[arg(long, value_parser = parse_latency, default_value = "0ms")]
    latency: (Duration, Duration),
    /// Share of admitted requests answered 500 (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    fail_rate: f64,
    /// How much of a minute's limit the buckets hold (the per-second grain: `1s`).
    #[arg(long, value_parser = spool::parse_duration, default_value = "1s")]
    burst: Duration,
    /// Require `Authorization: Bearer KEY`.
    #[arg(long)]
    api_key: Option<String>,
    /// Tokens after which every request gets 429 insufficient_quota.
    #[arg(long)]
    quota_tokens: Option<u64>,
    /// Append every request to this file as a JSON line (with its arrival time).
    #[arg(long)]
    log: Option<PathBuf>,
    /// Serve only these models (repeatable); others get 404 model_not_found.
    #[arg(long = "model")]
    models: Vec<String>,
    /// Seed of the latency and failure draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn parse_latency(text: &str) -> Result<(Duration, Duration), String> {
    let (low, high) = text.split_once("..").unwrap_or((text, text));
    let low = spool::parse_duration(low).map_err(|e| e.to_string())?;
    let high = spool::parse_duration(high).map_err(|e| e.to_string())?;
    if high < low {
        return Err(format!("`{text}`: the range's end comes before its start"));
    }
    Ok((low, high))
}

pub(crate) async fn run(a: MockLlmArgs) -> Result<ExitCode, CliError> {
    if !(0.0..=1.0).contains(&a.fail_rate) {
        return Err(CliError::Usage(format!(
            "--fail-rate {} is not between 0 and 1",
            a.fail_rate
        )));
    }
    if a.rpm == Some(0) || a.tpm == Some(0) {
        return Err(CliError::Usage(
            "--rpm and --tpm must be above 0; leave them out for no limit".into(),
        ));
    }
    let config = MockConfig {
        rpm: a.rpm,
        tpm: a.tpm,
        latency: a.latency,
        fail_rate: a.fail_rate,
        burst: a.burst,
        api_key: a.api_key,
        quota_tokens: a.quota_tokens,
        log: a.log,
        models: (!a.models.is_empty()).then_some(a.models),
        seed: a.seed,
    };
    let mock = MockLlm::start(config, a.bind).await?;
    {
        use std::io::Write;
        let mut out = std::io::stdout();
        writeln!(out, "mock-llm listening on {}", mock.base_url())?;
        out.flush()?;
    }
    crate::dashboard::stopped().await;
    mock.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
