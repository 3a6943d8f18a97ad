//! `/livez` and `/health`, for orchestrators: served by the dashboard and by
//! `spool work --http` / `spool supervise --http`.
//!
//! - `GET /livez`: 200 while the process runs, whatever the store does, so a database blip
//!   does not make an orchestrator restart every worker (D-3).
//! - `GET /health`: the checks of `spool health` with their JSON, 200 when healthy, else 503.

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use spool::{Store, health::HealthOptions};

/// Both probes over `store`.
pub fn router(store: Arc<dyn Store>) -> Router {
    Router::new()
        .route("/health", get(health_of))
        .with_state(store)
        .merge(livez())
}

/// `/livez` alone.
pub fn livez<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/livez", get(|| async { "ok\n" }))
}

pub(crate) async fn health(State(dashboard): State<crate::Shared>) -> Response {
    report(&*dashboard.store).await
}

async fn health_of(State(store): State<Arc<dyn Store>>) -> Response {
    report(&*store).await
}

async fn report(store: &dyn Store) -> Response {
    match spool::health::check(store, &HealthOptions::default()).await {
        Ok(report) => {
            let status = if report.healthy {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            (status, Json(report)).into_response()
        }
        // The same shape as a report: the store check failed.
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({
                "healthy": false,
                "checks": [{"name": "store", "ok": false, "detail": e.to_string()}],
            })),
        )
            .into_response(),
    }
}
