//! `spool dashboard`: serves the web dashboard, `/metrics`, `/livez` and `/health` (the
//! `spool-dashboard` crate's router) until SIGTERM or Ctrl-C.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc};

use clap::Args;
use spool::Store;
use spool_dashboard::{Dashboard, check_bind};

use crate::{CliError, supervise::DashboardSection};

/// Where the dashboard listens unless told.
const DEFAULT_BIND: &str = "127.0.0.1:7070";

/// `spool dashboard`.
#[derive(Debug, Args)]
pub(crate) struct DashboardArgs {
    /// The address to listen on. Without a token only a loopback address is accepted.
    /// Without it: the configuration's `[dashboard] bind`, else 127.0.0.1:7070.
    #[arg(long)]
    bind: Option<SocketAddr>,
    /// Hide and refuse every action (retry, pause, delete, ...).
    #[arg(long)]
    read_only: bool,
    /// A file holding the token every request must carry (`SPOOL_DASHBOARD_TOKEN` takes
    /// precedence).
    #[arg(long)]
    token_file: Option<PathBuf>,
}

pub(crate) async fn run(
    store: Arc<dyn Store>,
    a: DashboardArgs,
    section: Option<DashboardSection>,
) -> Result<ExitCode, CliError> {
    let section = section.unwrap_or_default();
    let bind = match a.bind {
        Some(bind) => bind,
        None => section
            .bind()
            .map_err(CliError::Usage)?
            .unwrap_or_else(|| DEFAULT_BIND.parse().expect("a valid address")),
    };
    let token = token(a.token_file.or(section.token_file))?;
    check_bind(bind, token.is_some()).map_err(|e| CliError::Usage(e.to_string()))?;
    let read_only = a.read_only || section.read_only.unwrap_or(false);
    let router = Dashboard::new(store)
        .read_only(read_only)
        .token(token)
        .router();
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| CliError::Usage(format!("cannot listen on {bind}: {e}")))?;
    let addr = listener.local_addr()?;
    eprintln!("dashboard on http://{addr}/ (metrics at /metrics)");
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stopped())
    .await?;
    Ok(ExitCode::SUCCESS)
}

/// The token: `SPOOL_DASHBOARD_TOKEN`, else the file's first line.
fn token(file: Option<PathBuf>) -> Result<Option<String>, CliError> {
    if let Some(token) = std::env::var("SPOOL_DASHBOARD_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
    {
        return Ok(Some(token.trim().to_string()));
    }
    let Some(path) = file else { return Ok(None) };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        CliError::Usage(format!(
            "cannot read the token file {}: {e}",
            path.display()
        ))
    })?;
    let token = text.lines().next().unwrap_or_default().trim().to_string();
    if token.is_empty() {
        return Err(CliError::Usage(format!(
            "the token file {} is empty: write the token on its first line",
            path.display()
        )));
    }
    Ok(Some(token))
}

/// Resolves on SIGTERM or Ctrl-C.
pub(crate) async fn stopped() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let terminated = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            () = terminated => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
