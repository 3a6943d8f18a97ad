//! The app's HTTP side: `POST /documents` creates documents and dispatches their
//! generation, `GET /documents/{id}/status` (seed 000's endpoint) and `GET /batches/{id}`.

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};
use spool::{Spool, Store};

use crate::{
    documents::{self, Document},
    jobs::{Analyse, Generate},
};

type Failure = (StatusCode, String);

fn internal(e: impl std::fmt::Display) -> Failure {
    (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// `POST /documents` body.
#[derive(Debug, Deserialize)]
pub(crate) struct NewDocuments {
    documents: Vec<NewDocument>,
}

#[derive(Debug, Deserialize)]
struct NewDocument {
    id: String,
    title: String,
}

pub(crate) fn router(store: Arc<dyn Store>) -> Router {
    Router::new()
        .route("/documents", post(create))
        .route("/documents/{id}/status", get(status))
        .route("/batches/{id}", get(batch))
        .with_state(store)
}

/// Creates the documents not seen before and generates them: per document a chain
/// analyse → generate, all of them in one batch. Documents seen before are left alone.
async fn create(
    State(store): State<Arc<dyn Store>>,
    Json(body): Json<NewDocuments>,
) -> Result<Json<Value>, Failure> {
    let spool = Spool::new(store.clone());
    let batch_id = spool::new_id();
    let (mut created, mut existing) = (Vec::new(), Vec::new());
    for new in body.documents {
        let doc = Document {
            id: new.id.clone(),
            title: new.title,
            state: "queued".into(),
            batch_id: Some(batch_id.clone()),
            created_ms: spool::now_ms(),
            ..Document::default()
        };
        if documents::create(&store, &doc).await.map_err(internal)? {
            created.push(new.id);
        } else {
            existing.push(new.id);
        }
    }
    if created.is_empty() {
        return Ok(Json(
            json!({"batch_id": null, "created": created, "existing": existing}),
        ));
    }
    let mut batch = spool
        .batch(format!("generate {} documents", created.len()))
        .id(batch_id.clone())
        .allow_failures()
        .on_queue("documents");
    for id in &created {
        let chain = spool
            .chain()
            .then(Analyse {
                document: id.clone(),
            })
            .and_then(|c| {
                c.then(Generate {
                    document: id.clone(),
                })
            })
            .map_err(internal)?;
        batch = batch.chain(chain).map_err(internal)?;
    }
    batch.dispatch().await.map_err(internal)?;
    Ok(Json(
        json!({"batch_id": batch_id, "created": created, "existing": existing}),
    ))
}

/// Seed 000's status endpoint: state, progress, attempts, error, result.
async fn status(
    State(store): State<Arc<dyn Store>>,
    Path(id): Path<String>,
) -> Result<Json<Document>, Failure> {
    match documents::load(&store, &id).await.map_err(internal)? {
        Some(doc) => Ok(Json(doc)),
        None => Err((StatusCode::NOT_FOUND, format!("no document {id}"))),
    }
}

async fn batch(
    State(store): State<Arc<dyn Store>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Failure> {
    match store.batch(&id).await.map_err(internal)? {
        Some(batch) => Ok(Json(serde_json::to_value(batch).map_err(internal)?)),
        None => Err((StatusCode::NOT_FOUND, format!("no batch {id}"))),
    }
}
