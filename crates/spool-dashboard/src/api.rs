//! The read side of the JSON API the pages use (documented in docs/dashboard.md).

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use spool::{
    metrics::{Summary, window_records},
    store::{RecordKind, StoreError},
};

use crate::{
    Shared,
    series::{Span, series},
};

/// How many rows a listing returns at most.
pub(crate) const MAX_ROWS: u32 = 500;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/overview", get(overview))
        .route("/api/queues", get(queues))
        .route("/api/jobs", get(crate::listing::jobs))
        .route("/api/jobs/{id}", get(job))
        .route("/api/batches", get(batches))
        .route("/api/batches/{id}", get(batch))
        .route("/api/workers", get(workers))
        .route("/api/schedules", get(schedules))
}

/// A store error as the API answers it: 503 with the message.
pub(crate) struct ApiError(StoreError);

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // A request the store refuses (a cursor it did not write) is the caller's mistake.
        let status = match self.0 {
            StoreError::Invalid(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        (status, Json(json!({ "error": self.0.to_string() }))).into_response()
    }
}

pub(crate) type ApiResult = Result<Response, ApiError>;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct OverviewQuery {
    #[serde(default)]
    span: Span,
    queue: Option<String>,
}

/// The overview document, also what the live stream sends.
#[derive(Debug, Serialize)]
pub(crate) struct Overview {
    span: Span,
    /// Now, ms since the Unix epoch.
    now: i64,
    totals: Totals,
    summary: Summary,
    series: Vec<crate::series::Point>,
    read_only: bool,
}

#[derive(Debug, Serialize)]
struct Totals {
    pending: u64,
    delayed: u64,
    reserved: u64,
    failed: u64,
    processed: u64,
    workers: usize,
    busy: usize,
    paused_queues: usize,
}

pub(crate) async fn overview_of(
    dashboard: &crate::Dashboard,
    query: &OverviewQuery,
) -> Result<Overview, StoreError> {
    let store = &*dashboard.store;
    let counts = dashboard.counts.get(&dashboard.store).await?;
    let stats = &counts.stats;
    let window = query.span.ms();
    let records = window_records(store, window, query.queue.as_deref()).await?;
    let summary = Summary::of(&records, window).with_ages_of(stats, query.queue.as_deref());
    let sum = |f: fn(&spool::store::QueueStats) -> u64| stats.queues.iter().map(f).sum();
    let totals = Totals {
        pending: sum(|q| q.pending),
        delayed: sum(|q| q.delayed),
        reserved: sum(|q| q.reserved),
        failed: stats.failed,
        processed: stats.processed,
        workers: stats.workers.len(),
        busy: stats.workers.iter().map(|w| w.busy.len()).sum(),
        paused_queues: stats.queues.iter().filter(|q| q.paused).count(),
    };
    Ok(Overview {
        span: query.span,
        now: spool::now_ms(),
        totals,
        summary,
        series: series(&records, query.span),
        read_only: dashboard.read_only,
    })
}

async fn overview(State(d): State<Shared>, Query(query): Query<OverviewQuery>) -> ApiResult {
    Ok(Json(overview_of(&d, &query).await?).into_response())
}

async fn queues(State(d): State<Shared>) -> ApiResult {
    let counts = d.counts.get(&d.store).await?;
    let stats = &counts.stats;
    let rows: Vec<Value> = stats
        .queues
        .iter()
        .map(|q| {
            let workers = stats
                .workers
                .iter()
                .filter(|w| w.queues.contains(&q.name))
                .count();
            json!({
                "name": q.name, "pending": q.pending, "delayed": q.delayed,
                "reserved": q.reserved, "failed": counts.failed.get(&q.name).copied().unwrap_or(0),
                "oldest_ready_age_ms": q.oldest_ready_age_ms, "paused": q.paused,
                "workers": workers,
            })
        })
        .collect();
    Ok(Json(json!({ "queues": rows })).into_response())
}

/// A stored envelope's payload, never an encrypted job's plaintext (the store holds only its
/// sealed form, which is shown as `{"encrypted": true}`).
fn payload_of(envelope: &str) -> Value {
    let Ok(envelope) = serde_json::from_str::<Value>(envelope) else {
        return json!({ "unreadable": true });
    };
    if envelope.get("payload_enc").is_some() {
        return json!({ "encrypted": true });
    }
    envelope.get("payload").cloned().unwrap_or(Value::Null)
}

fn options_of(envelope: &str) -> Value {
    serde_json::from_str::<Value>(envelope)
        .ok()
        .and_then(|e| e.get("options").cloned())
        .unwrap_or(Value::Null)
}

async fn job(State(d): State<Shared>, Path(id): Path<String>) -> ApiResult {
    if let Some(j) = d.store.job(&id).await? {
        return Ok(Json(json!({
            "kind": "queued", "id": j.id, "queue": j.queue, "job": j.job, "state": j.state,
            "attempts": j.attempts, "recoveries": j.recoveries, "deferrals": j.deferrals,
            "last_error": j.last_error, "available_at": j.available_at, "worker": j.worker,
            "reserved_at": j.reserved_at, "progress": j.progress, "tags": j.tags,
            "payload": payload_of(&j.envelope), "options": options_of(&j.envelope),
        }))
        .into_response());
    }
    if let Some(f) = d.store.failed_job(&id).await? {
        return Ok(Json(json!({
            "kind": "failed", "id": f.id, "queue": f.queue, "job": f.job, "state": "failed",
            "attempts": f.attempts, "error": f.error, "causes": f.causes,
            "failed_at": f.failed_at, "tags": f.tags, "payload": payload_of(&f.envelope),
            "options": options_of(&f.envelope),
        }))
        .into_response());
    }
    if let Some(c) = d.store.job_result(&id).await? {
        let mut value = serde_json::to_value(&c).unwrap_or(Value::Null);
        value["kind"] = json!("completed");
        value["state"] = json!("completed");
        return Ok(Json(value).into_response());
    }
    Ok((
        StatusCode::NOT_FOUND,
        Json(json!({ "error": format!("no job `{id}`: not queued, not failed, and not completed within the history's retention") })),
    )
        .into_response())
}

async fn batches(State(d): State<Shared>) -> ApiResult {
    Ok(Json(json!({ "batches": d.store.batches(MAX_ROWS).await? })).into_response())
}

async fn batch(State(d): State<Shared>, Path(id): Path<String>) -> ApiResult {
    match d.store.batch(&id).await? {
        Some(batch) => Ok(Json(batch).into_response()),
        None => Ok((
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("no batch `{id}`") })),
        )
            .into_response()),
    }
}

async fn workers(State(d): State<Shared>) -> ApiResult {
    let counts = d.counts.get(&d.store).await?;
    let stats = &counts.stats;
    let now = spool::now_ms();
    let supervisors: Vec<Value> = d
        .store
        .records(RecordKind::Supervisor)
        .await?
        .into_iter()
        .filter(|r| r.value > now)
        .map(|r| {
            let info = r
                .info
                .as_deref()
                .and_then(|i| serde_json::from_str::<Value>(i).ok())
                .unwrap_or(Value::Null);
            json!({ "id": r.name, "info": info })
        })
        .collect();
    Ok(Json(json!({
        "workers": stats.workers,
        "expired_workers": stats.expired_workers,
        "supervisors": supervisors,
    }))
    .into_response())
}

/// The periodic jobs live workers run, with their next and last runs (as the workers
/// publish them: `spool::published_schedules`).
async fn schedules(State(d): State<Shared>) -> ApiResult {
    let schedules = spool::published_schedules(&*d.store).await?;
    Ok(Json(json!({ "schedules": schedules })).into_response())
}
