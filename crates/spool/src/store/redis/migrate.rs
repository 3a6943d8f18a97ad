//! What this build needs of the keyspace and of the server: the key layout version, set (or
//! checked) by [`QueueStore::migrate`](crate::store::QueueStore::migrate), and the server's
//! eviction policy, checked when a store is opened.
//!
//! Jobs are only as safe as the server keeps its keys: a server that may evict keys under
//! memory pressure can silently drop queued jobs (S-REL-8). Spool never sets a TTL on jobs,
//! batches, failed records or results, so the `volatile-*` policies (which only evict keys
//! that have one) never touch them and are accepted; under memory pressure they may evict the
//! few keys that do expire (unique locks held for a time, limiter hit logs, follow-up delivery
//! markers), weakening only those. `noeviction` is the recommended setting; every `allkeys-*`
//! policy, or one this build does not know, is refused unless the URL says
//! `allow_eviction=true`.

use crate::store::rules::{check_existing_schema, check_schema_version};
use redis::aio::MultiplexedConnection;

use super::{RedisStore, rows::int, scripts};
use crate::store::{StoreError, StoreResult};

/// The version of the key layout this build writes (kept in `{<prefix>}:meta`).
///
/// 2 adds the workflow keys (locks, batches, outboxes, results, limiters, slots) and the
/// fields jobs and failed records carry for them; a build that knows only 1 would settle jobs
/// without their batch, lock and follow-up effects, so it refuses a keyspace at 2.
///
/// 3 adds each queue's `:listed` mark and the unlisting of idle, empty queues; a build that
/// knows only 2 would push to an unlisted queue without listing it again (hiding it from
/// `status` and the reaper), so it refuses a keyspace at 3.
const LAYOUT_VERSION: i64 = 3;

impl RedisStore {
    /// Records this build's layout version in a new keyspace, or checks an existing one's:
    /// a keyspace written by a newer build is refused.
    pub(super) async fn migrate_layout(&self) -> StoreResult<()> {
        let mut call = self.on_global(&scripts::MIGRATE);
        call.arg(LAYOUT_VERSION);
        let found = int(&self.run(&call).await?, "layout version")?;
        check_schema_version(found, LAYOUT_VERSION)?;
        Ok(())
    }
}

impl RedisStore {
    /// Checks, reading only, that the keyspace holds this build's layout version.
    pub(super) async fn check_layout(&self) -> StoreResult<()> {
        let found: Option<i64> = self
            .command("HGET", self.keys.meta(), "schema_version")
            .await?;
        check_existing_schema(found, LAYOUT_VERSION, || {
            format!(
                "{} (prefix `{}`)",
                crate::redact::redact_url(&self.config.driver_url),
                self.config.prefix
            )
        })
    }
}

/// Whether a `maxmemory-policy` value can evict Spool's keys.
pub(super) fn evicts_spool_keys(policy: &str) -> bool {
    let policy = policy.to_ascii_lowercase();
    !(policy == "noeviction" || policy.starts_with("volatile-"))
}

/// Refuses to go on if the server may evict Spool's keys, unless `allow_eviction`. A server
/// that does not let clients read its configuration (managed services often disable `CONFIG`)
/// is trusted, with a warning.
pub(super) async fn check_eviction(
    conn: &mut MultiplexedConnection,
    allow_eviction: bool,
) -> StoreResult<()> {
    let reply: redis::RedisResult<Vec<String>> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory-policy")
        .query_async(conn)
        .await;
    let policy = match reply {
        Ok(pair) => match pair.get(1) {
            Some(policy) => policy.clone(),
            None => {
                tracing::warn!(
                    "the Redis server did not report its maxmemory-policy; make sure it is `noeviction`"
                );
                return Ok(());
            }
        },
        Err(e)
            if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError)
                || e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoPerm) =>
        {
            tracing::warn!(
                "cannot read the Redis maxmemory-policy ({e}); make sure it is `noeviction`, or queued jobs may be evicted"
            );
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    if !evicts_spool_keys(&policy) {
        return Ok(());
    }
    if allow_eviction {
        tracing::warn!(
            policy,
            "the Redis server may evict keys (maxmemory-policy {policy}); allowed by allow_eviction=true, but queued jobs can be lost"
        );
        return Ok(());
    }
    Err(StoreError::Invalid(format!(
        "the Redis server's maxmemory-policy is `{policy}`: it may evict keys and silently drop queued jobs; \
         set `maxmemory-policy noeviction` (or a `volatile-*` policy), or add `allow_eviction=true` to the store URL to accept the risk"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_policies_that_spare_keys_without_ttl_pass() {
        for safe in ["noeviction", "volatile-lru", "volatile-ttl", "NoEviction"] {
            assert!(!evicts_spool_keys(safe), "{safe}");
        }
        for risky in [
            "allkeys-lru",
            "allkeys-lfu",
            "allkeys-random",
            "something-new",
        ] {
            assert!(evicts_spool_keys(risky), "{risky}");
        }
    }
}
