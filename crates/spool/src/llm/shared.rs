//! The admission state of each provider key in the store, under `llm:key:<key>`, changed by
//! compare-and-set so every process on every machine sees one state.

use crate::store::{KvExpect, Store, StoreError};

use super::admission::KeyState;

/// Where provider keys' states live in the key-value store.
pub(crate) const KEY_PREFIX: &str = "llm:key:";

/// Compare-and-set attempts before giving up (each loss means another process moved).
const MAX_ATTEMPTS: u32 = 200;

/// Whether an [`update`] writes what the closure did.
pub(crate) enum Step<R> {
    /// Write the changed state and return this.
    Write(R),
    /// Leave the stored state as it was and return this.
    Keep(R),
}

/// Reads the state of `key` (a fresh one if there is none or it is unreadable).
pub(crate) async fn read(store: &dyn Store, key: &str) -> Result<KeyState, StoreError> {
    Ok(store
        .kv_get(&format!("{KEY_PREFIX}{key}"))
        .await?
        .and_then(|entry| serde_json::from_str(&entry.value).ok())
        .unwrap_or_default())
}

/// Changes the state of `key` with `change`, atomically: read, change, write if no one
/// wrote in between, else again.
pub(crate) async fn update<R>(
    store: &dyn Store,
    key: &str,
    mut change: impl FnMut(&mut KeyState) -> Step<R>,
) -> Result<R, StoreError> {
    let name = format!("{KEY_PREFIX}{key}");
    for _ in 0..MAX_ATTEMPTS {
        let stored = store.kv_get(&name).await?;
        let (mut state, expect) = match &stored {
            Some(entry) => (
                serde_json::from_str(&entry.value).unwrap_or_default(),
                KvExpect::Version(entry.version),
            ),
            None => (KeyState::default(), KvExpect::Absent),
        };
        match change(&mut state) {
            Step::Keep(out) => return Ok(out),
            Step::Write(out) => {
                let value = serde_json::to_string(&state)
                    .map_err(|e| StoreError::Other(format!("encoding a provider state: {e}")))?;
                if store.kv_put(&name, &value, expect, None).await?.is_some() {
                    return Ok(out);
                }
            }
        }
        tokio::task::yield_now().await;
    }
    Err(StoreError::Other(format!(
        "the shared state of provider key `{key}` changed under {MAX_ATTEMPTS} writes in a row; \
         try again"
    )))
}

/// Every stored provider key state, by key.
pub(crate) async fn all(store: &dyn Store) -> Result<Vec<(String, KeyState)>, StoreError> {
    Ok(store
        .kv_list(KEY_PREFIX, 10_000)
        .await?
        .into_iter()
        .map(|(name, entry)| {
            let key = name.trim_start_matches(KEY_PREFIX).to_string();
            (key, serde_json::from_str(&entry.value).unwrap_or_default())
        })
        .collect())
}
