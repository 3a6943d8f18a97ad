//! The app's documents, kept in the store's key-value part (`pipeline:doc:<id>`): creating
//! one is a compare-and-set on an absent key, so posting the same documents twice creates
//! (and generates) each once.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use spool::{
    Store,
    store::{KvExpect, StoreError},
};

/// One document and how far it got.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Document {
    pub(crate) id: String,
    pub(crate) title: String,
    /// `queued`, `analysing`, `generating`, `done`, `failed`.
    pub(crate) state: String,
    /// 0-100.
    pub(crate) progress: u8,
    /// Attempts of the step running (or last run).
    pub(crate) attempts: u32,
    pub(crate) error: Option<String>,
    /// The analysis the generation starts from.
    pub(crate) outline: Option<String>,
    /// The generated text.
    pub(crate) result: Option<String>,
    pub(crate) batch_id: Option<String>,
    pub(crate) created_ms: i64,
    pub(crate) finished_ms: Option<i64>,
}

fn key(id: &str) -> String {
    format!("pipeline:doc:{id}")
}

/// Creates `doc` unless a document with its id exists; true if created.
pub(crate) async fn create(store: &Arc<dyn Store>, doc: &Document) -> Result<bool, StoreError> {
    let text = serde_json::to_string(doc).expect("plain data");
    Ok(store
        .kv_put(&key(&doc.id), &text, KvExpect::Absent, None)
        .await?
        .is_some())
}

/// The document `id`, if it exists.
pub(crate) async fn load(store: &Arc<dyn Store>, id: &str) -> Result<Option<Document>, StoreError> {
    Ok(store
        .kv_get(&key(id))
        .await?
        .and_then(|e| serde_json::from_str(&e.value).ok()))
}

/// Changes document `id` with `change` (read, change, write if unchanged meanwhile).
pub(crate) async fn update(
    store: &Arc<dyn Store>,
    id: &str,
    change: impl Fn(&mut Document),
) -> Result<(), StoreError> {
    loop {
        let Some(entry) = store.kv_get(&key(id)).await? else {
            return Ok(());
        };
        let mut doc: Document = serde_json::from_str(&entry.value).unwrap_or_default();
        change(&mut doc);
        let text = serde_json::to_string(&doc).expect("plain data");
        let expect = KvExpect::Version(entry.version);
        if store.kv_put(&key(id), &text, expect, None).await?.is_some() {
            return Ok(());
        }
    }
}
