//! `GET api/jobs`: jobs by state (pending, delayed, running, failed, completed), searched by
//! job name, tag and batch, a page at a time (documented in docs/dashboard.md). Queued jobs
//! and completed records come from the store's bounded searches, paged by their cursors; the
//! failed store is listed newest first.

use axum::{
    Json,
    extract::{Query, State},
    http::StatusCode,
    response::IntoResponse,
};
use serde::Deserialize;
use serde_json::{Value, json};
use spool::store::{FailedFilter, JobSearch, JobState};

use crate::{
    Shared,
    api::{ApiResult, MAX_ROWS},
};

#[derive(Debug, Deserialize)]
pub(crate) struct JobsQuery {
    state: Option<String>,
    queue: Option<String>,
    limit: Option<u32>,
    job: Option<String>,
    tag: Option<String>,
    batch: Option<String>,
    after: Option<String>,
}

/// An empty parameter (a blank search box) means none.
fn given(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

pub(crate) async fn jobs(State(d): State<Shared>, Query(q): Query<JobsQuery>) -> ApiResult {
    let limit = q.limit.unwrap_or(100).min(MAX_ROWS);
    let search = JobSearch {
        queue: given(q.queue),
        state: None,
        job: given(q.job),
        tag: given(q.tag),
        batch_id: given(q.batch),
        after: given(q.after),
        limit: Some(limit),
    };
    let state = match q.state.as_deref() {
        None | Some("") => None,
        Some("failed") => return failed(&d, search).await,
        Some("completed") => {
            let page = d.store.completed_jobs(&search).await?;
            return Ok(Json(json!({ "jobs": page.items, "next": page.next })).into_response());
        }
        Some("pending") => Some(JobState::Pending),
        Some("delayed") => Some(JobState::Delayed),
        Some("reserved") => Some(JobState::Reserved),
        Some(other) => {
            return Ok((
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": format!(
                    "unknown state `{other}`: use pending, delayed, reserved, failed or completed"
                )})),
            )
                .into_response());
        }
    };
    let page = d.store.search_jobs(&JobSearch { state, ..search }).await?;
    let now = spool::now_ms();
    let rows: Vec<Value> = page
        .items
        .iter()
        .map(|j| {
            json!({
                "id": j.id, "queue": j.queue, "job": j.job, "state": j.state,
                "attempts": j.attempts, "recoveries": j.recoveries, "deferrals": j.deferrals,
                "last_error": j.last_error, "available_at": j.available_at, "worker": j.worker,
                "running_for_ms": j.reserved_at.map(|at| (now - at).max(0)), "tags": j.tags,
            })
        })
        .collect();
    Ok(Json(json!({ "jobs": rows, "next": page.next })).into_response())
}

/// The newest failed records (at most a page), narrowed to a job name or tag among them. The
/// total comes from the counts snapshot (every record counted at most once a second, not on
/// every call); a queue it has no count for (no queued jobs) is counted now.
async fn failed(d: &Shared, search: JobSearch) -> ApiResult {
    let filter = FailedFilter {
        queue: search.queue.clone(),
        limit: search.limit,
    };
    let counts = d.counts.get(&d.store).await?;
    let known = match &search.queue {
        None => Some(counts.stats.failed),
        Some(queue) => counts.failed.get(queue).copied(),
    };
    let (mut records, total) = match known {
        Some(total) => (d.store.failed_page(&filter).await?, total),
        None => d.store.failed_jobs(&filter).await?,
    };
    records.retain(|f| {
        search.job.as_ref().is_none_or(|j| *j == f.job)
            && search.tag.as_ref().is_none_or(|t| f.tags.contains(t))
    });
    Ok(Json(json!({ "jobs": records, "total": total })).into_response())
}
