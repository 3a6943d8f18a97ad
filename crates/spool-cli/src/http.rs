//! `--http ADDR` on `spool work` and `spool supervise`: probes for orchestrators.
//!
//! - `GET /livez`: 200 while the process runs, whatever the store does, so a database blip
//!   does not make an orchestrator restart every worker (D-3).
//! - `GET /health`: the checks of `spool health` with their JSON, 200 when healthy, else 503.

use std::{net::SocketAddr, sync::Arc};

use axum::Router;
use spool::Store;

use crate::CliError;

/// Listens on `addr` and serves the probes in the background.
pub(crate) async fn serve(addr: SocketAddr, store: Arc<dyn Store>) -> Result<(), CliError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| CliError::Usage(format!("cannot listen on {addr} (--http): {e}")))?;
    tracing::info!(%addr, "serving /livez and /health");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(store)).await {
            tracing::error!(%addr, "the --http server stopped: {e}");
        }
    });
    Ok(())
}

/// The probes' routes (shared with the dashboard).
pub(crate) fn router(store: Arc<dyn Store>) -> Router {
    spool_dashboard::probes::router(store)
}
