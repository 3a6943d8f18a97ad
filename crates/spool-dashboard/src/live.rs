//! Live updates: `GET /api/live` streams the overview document (server-sent events, event
//! `overview`) every 2 seconds, so a page is never more than 2 s stale without polling.

use std::{convert::Infallible, time::Duration};

use axum::{
    Router,
    extract::{Query, State},
    response::sse::{Event, KeepAlive, Sse},
    routing::get,
};
use futures_util::{Stream, stream};

use crate::{
    Shared,
    api::{OverviewQuery, overview_of},
};

/// How often the stream sends.
const EVERY: Duration = Duration::from_secs(2);

pub(crate) fn routes() -> Router<Shared> {
    Router::new().route("/api/live", get(live))
}

async fn live(
    State(d): State<Shared>,
    Query(query): Query<OverviewQuery>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let first = true;
    let updates = stream::unfold((d, query, first), |(d, query, first)| async move {
        if !first {
            tokio::time::sleep(EVERY).await;
        }
        let event = match overview_of(&d, &query).await {
            Ok(overview) => Event::default()
                .event("overview")
                .json_data(&overview)
                .unwrap_or_else(|_| Event::default().event("error")),
            // The page keeps its last figures and says the store is unreachable.
            Err(e) => Event::default().event("error").data(e.to_string()),
        };
        Some((Ok(event), (d, query, false)))
    });
    Sse::new(updates).keep_alive(KeepAlive::default())
}
