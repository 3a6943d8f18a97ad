//! `--http ADDR` on `spool work` and `spool supervise`: probes for orchestrators, and for a
//! worker its own figures.
//!
//! - `GET /livez`: 200 while the process runs, whatever the store does, so a database blip
//!   does not make an orchestrator restart every worker (D-3).
//! - `GET /health`: the checks of `spool health` with their JSON, 200 when healthy, else 503.
//! - `GET /metrics` (workers): this process's counts under `spool_worker_*` names; the
//!   store-wide series are the dashboard's, so nothing is counted twice.

use std::{fmt::Write, net::SocketAddr, sync::Arc};

use axum::{Router, http::header, response::IntoResponse, routing::get};
use spool::{Store, worker::WorkerCounters};

use crate::CliError;

/// Listens on `addr` and serves the probes (and a worker's `/metrics`) in the background.
pub(crate) async fn serve(
    addr: SocketAddr,
    store: Arc<dyn Store>,
    worker: Option<WorkerCounters>,
) -> Result<(), CliError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| CliError::Usage(format!("cannot listen on {addr} (--http): {e}")))?;
    tracing::info!(%addr, "serving /livez, /health and /metrics");
    let mut router = spool_dashboard::probes::router(store);
    if let Some(counters) = worker {
        router = router.merge(metrics(counters));
    }
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(%addr, "the --http server stopped: {e}");
        }
    });
    Ok(())
}

/// A worker's `/metrics`.
fn metrics(counters: WorkerCounters) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let c = counters.clone();
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    render(&c),
                )
                    .into_response()
            }
        }),
    )
}

fn render(c: &WorkerCounters) -> String {
    let mut out = String::new();
    for (name, kind, help, value) in [
        (
            "spool_worker_jobs_completed_total",
            "counter",
            "Jobs this worker completed.",
            c.completed(),
        ),
        (
            "spool_worker_jobs_failed_total",
            "counter",
            "Jobs this worker failed for good.",
            c.failed(),
        ),
        (
            "spool_worker_jobs_handed_back_total",
            "counter",
            "Jobs this worker handed back as it stopped.",
            c.handed_back(),
        ),
        (
            "spool_worker_jobs_running",
            "gauge",
            "Jobs running in this worker now.",
            c.running(),
        ),
        (
            "spool_worker_concurrency",
            "gauge",
            "Jobs this worker runs at once at most.",
            c.concurrency() as u64,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
    out
}
