//! The key-value part on Redis: under the tag `{<prefix>:kv}`, one hash per value
//! (`:v:<name>`: value, version, expiry; expiring by itself) and a sorted set of names
//! (`:i`) read by lexical range for prefix listings. Writes are one script each.

use std::time::Duration;

use async_trait::async_trait;
use redis::Value;

use super::{RedisStore, scripts};
use crate::store::{
    KeyValueStore, KvEntry, KvExpect, StoreError, StoreResult,
    contract::kv::{check_kv_key, prefix_end},
};

/// Index names checked per pruning step: each step is one short script.
const PRUNE_STEP: i64 = 500;

#[async_trait]
impl KeyValueStore for RedisStore {
    async fn kv_get(&self, key: &str) -> StoreResult<Option<KvEntry>> {
        let mut read = redis::cmd("HMGET");
        read.arg(format!("{}:v:{key}", self.keys.kv()))
            .arg(&["v", "ver", "exp"]);
        let fields: Option<Vec<Option<String>>> = self.each([read]).await?.pop();
        Ok(match fields.as_deref() {
            Some([Some(value), Some(version), expires]) => Some(entry(value, version, expires)?),
            _ => None,
        })
    }

    async fn kv_put(
        &self,
        key: &str,
        value: &str,
        expect: KvExpect,
        ttl: Option<Duration>,
    ) -> StoreResult<Option<i64>> {
        check_kv_key(key)?;
        let (mode, expected) = match expect {
            KvExpect::Any => (0, 0),
            KvExpect::Absent => (1, 0),
            KvExpect::Version(v) => (2, v),
        };
        let mut call = scripts::KV_PUT.key(self.keys.kv());
        call.arg(key)
            .arg(value)
            .arg(mode)
            .arg(expected)
            .arg(ttl.map_or(0, |t| t.as_millis().max(1) as i64));
        match self.run(&call).await? {
            Value::Nil => Ok(None),
            Value::Int(version) => Ok(Some(version)),
            other => Err(StoreError::Other(format!(
                "kv_put.lua answered {other:?}, not a version"
            ))),
        }
    }

    async fn kv_list(&self, prefix: &str, limit: u32) -> StoreResult<Vec<(String, KvEntry)>> {
        let mut call = scripts::KV_LIST.key(self.keys.kv());
        call.arg(prefix)
            .arg(prefix_end(prefix).unwrap_or_default())
            .arg(limit);
        let flat: Vec<String> = parse(self.run(&call).await?, "a key-value listing")?;
        flat.chunks_exact(4)
            .map(|f| Ok((f[0].clone(), entry(&f[1], &f[2], &Some(f[3].clone()))?)))
            .collect()
    }

    async fn kv_delete(&self, prefix: &str) -> StoreResult<u64> {
        let mut call = scripts::KV_DELETE.key(self.keys.kv());
        call.arg(prefix).arg(prefix_end(prefix).unwrap_or_default());
        parse(self.run(&call).await?, "a key-value deletion")
    }

    async fn kv_prune(&self) -> StoreResult<u64> {
        let (mut offset, mut removed) = (0, 0);
        while offset >= 0 {
            let mut call = scripts::KV_PRUNE.key(self.keys.kv());
            call.arg(offset).arg(PRUNE_STEP);
            let (gone, next): (u64, i64) = parse(self.run(&call).await?, "a pruning step")?;
            removed += gone;
            offset = next;
        }
        Ok(removed)
    }
}

/// A script's reply as `T`.
fn parse<T: redis::FromRedisValue>(reply: Value, what: &str) -> StoreResult<T> {
    redis::from_redis_value(reply.clone()).map_err(|_| super::rows::malformed(what, &reply))
}

/// An entry from its stored fields.
fn entry(value: &str, version: &str, expires: &Option<String>) -> StoreResult<KvEntry> {
    let version = version
        .parse()
        .map_err(|_| StoreError::Other(format!("a stored value's version is `{version}`")))?;
    Ok(KvEntry {
        value: value.to_string(),
        version,
        expires_at_ms: expires.as_deref().and_then(|e| e.parse().ok()),
    })
}
