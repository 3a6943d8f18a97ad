//! What an operator can do from the dashboard: retry, forget, delete, run now, retry a
//! queue's failed jobs, pause and continue a queue, cancel and retry a batch.
//!
//! Every action is a `POST` that carries the header `X-Spool-Action: 1`: a page on another
//! site can neither set it nor send the `SameSite=Strict` cookie, so actions are safe from
//! cross-site requests. A read-only dashboard refuses them all (403). Each one is logged with
//! who asked.

use axum::{
    Extension, Json, Router,
    extract::{Path, Request, State},
    http::StatusCode,
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::json;
use spool::store::RetrySelector;

use crate::{Shared, api::ApiResult, auth::Who};

/// The header every action must carry.
pub(crate) const ACTION_HEADER: &str = "x-spool-action";

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/queues/{queue}/pause", post(pause))
        .route("/api/queues/{queue}/continue", post(resume))
        .route("/api/queues/{queue}/retry-failed", post(retry_queue))
        .route("/api/failed/{id}/retry", post(retry))
        .route("/api/failed/{id}/forget", post(forget))
        .route("/api/jobs/{id}/delete", post(delete))
        .route("/api/jobs/{id}/run-now", post(run_now))
        .route("/api/batches/{id}/cancel", post(cancel_batch))
        .route("/api/batches/{id}/retry", post(retry_batch))
        .route_layer(middleware::from_fn(guard))
}

/// Refuses actions without the action header.
async fn guard(request: Request, next: Next) -> Response {
    if request.headers().get(ACTION_HEADER).is_none() {
        return refuse(
            StatusCode::FORBIDDEN,
            "actions need the header `X-Spool-Action: 1` (the dashboard's pages send it)",
        );
    }
    next.run(request).await
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// The answer to an action: what changed, logged with who asked.
fn done(who: &Who, action: &str, target: &str, changed: serde_json::Value) -> Response {
    tracing::info!(who = %who.0, action, target, %changed, "dashboard action");
    Json(json!({ "action": action, "target": target, "changed": changed })).into_response()
}

/// The refusal of a read-only dashboard, if it is one.
fn read_only(d: &Shared) -> Option<Response> {
    d.read_only.then(|| {
        refuse(
            StatusCode::FORBIDDEN,
            "this dashboard is read-only (--read-only)",
        )
    })
}

macro_rules! action {
    ($name:ident, $label:literal, |$d:ident, $target:ident| $body:expr) => {
        async fn $name(
            State($d): State<Shared>,
            Extension(who): Extension<Who>,
            Path($target): Path<String>,
        ) -> ApiResult {
            if let Some(refused) = read_only(&$d) {
                return Ok(refused);
            }
            let changed: serde_json::Value = $body;
            $d.counts.invalidate().await;
            Ok(done(&who, $label, &$target, changed))
        }
    };
}

action!(pause, "pause", |d, queue| json!(
    d.store.pause(std::slice::from_ref(&queue)).await?
));
action!(resume, "continue", |d, queue| json!(
    d.store.resume(std::slice::from_ref(&queue)).await?
));
action!(retry_queue, "retry-failed", |d, queue| json!(
    d.store
        .retry_failed(&RetrySelector::All {
            queue: Some(queue.clone())
        })
        .await?
));
action!(retry, "retry", |d, id| json!(
    d.store
        .retry_failed(&RetrySelector::Ids(vec![id.clone()]))
        .await?
));
action!(forget, "forget", |d, id| json!(
    d.store.forget_failed(&id).await?
));
action!(delete, "delete", |d, id| json!(
    d.store.delete_job(&id).await?
));
action!(run_now, "run-now", |d, id| json!(
    d.store.run_job_now(&id).await?
));
action!(cancel_batch, "cancel-batch", |d, id| json!(
    d.store.cancel_batch(&id).await?
));
action!(retry_batch, "retry-batch", |d, id| json!(
    d.store
        .retry_failed(&RetrySelector::Batch(id.clone()))
        .await?
));
