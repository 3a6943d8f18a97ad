//! The key-value part: small shared values every process reads and changes by
//! compare-and-set, optionally expiring. Whatever must agree across workers on every machine
//! without a job attached to it lives here: a language-model provider's admission state
//! (its pacing, a 429's pause, a blocked key), the model calls a job already paid for, a
//! pipeline's finished steps, a shared result cache.

use std::time::Duration;

use async_trait::async_trait;

use crate::store::StoreResult;

/// Longest key accepted, in bytes (the SQL stores index it).
pub const MAX_KV_KEY: usize = 255;

/// A stored value and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvEntry {
    /// The value (text; JSON by convention).
    pub value: String,
    /// Its version: 1 when first written, one more at every write.
    pub version: i64,
    /// When it expires (ms since the Unix epoch), if ever.
    pub expires_at_ms: Option<i64>,
}

/// What [`KeyValueStore::kv_put`] expects to find, for compare-and-set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvExpect {
    /// Write whatever is there.
    Any,
    /// Write only if there is no value (or only an expired one).
    Absent,
    /// Write only if the live value has this version.
    Version(i64),
}

/// The key-value part of the contract.
///
/// Reads never return an expired value; expired values are deleted by
/// [`KeyValueStore::kv_prune`] (workers call it with their other pruning) or expire by
/// themselves (Redis).
///
/// ```no_run
/// # async fn demo() -> Result<(), spool::StoreError> {
/// use spool::store::{KeyValueStore, KvExpect, Store};
/// let store: std::sync::Arc<dyn Store> = spool::connect("sqlite://jobs.db").await?;
/// let v1 = store.kv_put("counter", "1", KvExpect::Absent, None).await?;
/// // Only one of two racing writers that read version 1 wins.
/// let won = store.kv_put("counter", "2", KvExpect::Version(v1.unwrap()), None).await?;
/// assert!(won.is_some());
/// # Ok(()) }
/// ```
#[async_trait]
pub trait KeyValueStore: Send + Sync + 'static {
    /// The live value under `key`, if any.
    async fn kv_get(&self, key: &str) -> StoreResult<Option<KvEntry>>;

    /// Writes `value` under `key` if `expect` holds, atomically; returns the new version, or
    /// `None` (nothing written) if it did not hold. The value expires `ttl` after the write
    /// (measured by the store's clock), or never. A key written again after its value expired
    /// may start over at version 1.
    /// Fails with [`crate::StoreError::Invalid`] if the key is empty or longer than
    /// [`MAX_KV_KEY`] bytes.
    async fn kv_put(
        &self,
        key: &str,
        value: &str,
        expect: KvExpect,
        ttl: Option<Duration>,
    ) -> StoreResult<Option<i64>>;

    /// The live values whose key starts with `prefix`, in key order, at most `limit`.
    async fn kv_list(&self, prefix: &str, limit: u32) -> StoreResult<Vec<(String, KvEntry)>>;

    /// Deletes every value whose key starts with `prefix` (a whole key deletes just it, and
    /// any key it is a prefix of); returns how many went.
    async fn kv_delete(&self, prefix: &str) -> StoreResult<u64>;

    /// Deletes values expired by now; returns how many.
    async fn kv_prune(&self) -> StoreResult<u64>;
}

/// The expiry instant of a value written now with `ttl`, by this process's clock (the SQL
/// stores; Redis uses its own).
pub(crate) fn expiry(ttl: Option<Duration>) -> Option<i64> {
    ttl.map(|ttl| crate::envelope::now_ms().saturating_add(ttl.as_millis() as i64))
}

/// Checks a key before any store sees it.
pub(crate) fn check_kv_key(key: &str) -> StoreResult<()> {
    if key.is_empty() || key.len() > MAX_KV_KEY {
        return Err(crate::StoreError::Invalid(format!(
            "a key-value key must be 1 to {MAX_KV_KEY} bytes long, not {}",
            key.len()
        )));
    }
    Ok(())
}

/// The smallest string greater than every string starting with `prefix` (for range scans),
/// or `None` when every string from `prefix` on matches (empty or all `char::MAX`).
pub(crate) fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        if let Some(next) = char::from_u32(last as u32 + 1) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_bounds_the_prefix() {
        assert_eq!(prefix_end("llm:").as_deref(), Some("llm;"));
        assert_eq!(prefix_end("a").as_deref(), Some("b"));
        assert_eq!(prefix_end(""), None);
        assert!("llm:zzz" < prefix_end("llm:").unwrap().as_str());
    }

    #[test]
    fn keys_are_bounded() {
        assert!(check_kv_key("").is_err());
        assert!(check_kv_key(&"k".repeat(MAX_KV_KEY + 1)).is_err());
        assert!(check_kv_key("llm:openai").is_ok());
    }
}
