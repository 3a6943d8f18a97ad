//! The key-value part on MySQL: values in `spool_kv`; a compare-and-set locks the row (or
//! its gap), decides, and writes in one transaction.

use std::time::Duration;

use async_trait::async_trait;

use super::{
    MysqlStore,
    retry::{Begin, TxError, idempotent, in_transaction},
};
use crate::{
    envelope::now_ms,
    store::{
        KeyValueStore, KvEntry, KvExpect, StoreResult,
        contract::kv::{check_kv_key, expiry, prefix_end},
    },
};

#[async_trait]
impl KeyValueStore for MysqlStore {
    async fn kv_get(&self, key: &str) -> StoreResult<Option<KvEntry>> {
        let row: Option<(String, i64, Option<i64>)> = idempotent!(&self.pool, |conn| {
            sqlx::query_as(include_str!("sql/kv_get.sql"))
                .bind(key)
                .bind(now_ms())
                .fetch_optional(&mut *conn)
                .await
        })?;
        Ok(row.map(|(value, version, expires_at_ms)| KvEntry {
            value,
            version,
            expires_at_ms,
        }))
    }

    async fn kv_put(
        &self,
        key: &str,
        value: &str,
        expect: KvExpect,
        ttl: Option<Duration>,
    ) -> StoreResult<Option<i64>> {
        check_kv_key(key)?;
        let expires_at_ms = expiry(ttl);
        in_transaction!(&self.pool, Begin::Write, |conn| {
            let now = now_ms();
            let stored: Option<(i64, Option<i64>)> =
                sqlx::query_as(include_str!("sql/kv_lock.sql"))
                    .bind(key)
                    .fetch_optional(&mut *conn)
                    .await?;
            let live = stored
                .filter(|(_, expires)| expires.is_none_or(|at| at > now))
                .map(|(version, _)| version);
            let holds = match expect {
                KvExpect::Any => true,
                KvExpect::Absent => live.is_none(),
                KvExpect::Version(expected) => live == Some(expected),
            };
            if !holds {
                return Ok::<_, TxError>(None);
            }
            let version = match stored {
                Some((old, _)) => {
                    sqlx::query(include_str!("sql/kv_update.sql"))
                        .bind(value)
                        .bind(old + 1)
                        .bind(expires_at_ms)
                        .bind(key)
                        .execute(&mut *conn)
                        .await?;
                    old + 1
                }
                None => {
                    sqlx::query(include_str!("sql/kv_insert.sql"))
                        .bind(key)
                        .bind(value)
                        .bind(expires_at_ms)
                        .execute(&mut *conn)
                        .await?;
                    1
                }
            };
            Ok(Some(version))
        })
    }

    async fn kv_list(&self, prefix: &str, limit: u32) -> StoreResult<Vec<(String, KvEntry)>> {
        let end = prefix_end(prefix);
        let rows: Vec<(String, String, i64, Option<i64>)> = idempotent!(&self.pool, |conn| {
            sqlx::query_as(include_str!("sql/kv_list.sql"))
                .bind(prefix)
                .bind(end.as_deref())
                .bind(end.as_deref())
                .bind(now_ms())
                .bind(limit)
                .fetch_all(&mut *conn)
                .await
        })?;
        Ok(rows
            .into_iter()
            .map(|(key, value, version, expires_at_ms)| {
                (
                    key,
                    KvEntry {
                        value,
                        version,
                        expires_at_ms,
                    },
                )
            })
            .collect())
    }

    async fn kv_delete(&self, prefix: &str) -> StoreResult<u64> {
        let end = prefix_end(prefix);
        in_transaction!(&self.pool, Begin::Write, |conn| {
            let n = sqlx::query(include_str!("sql/kv_delete.sql"))
                .bind(prefix)
                .bind(end.as_deref())
                .bind(end.as_deref())
                .execute(conn)
                .await?
                .rows_affected();
            Ok::<_, TxError>(n)
        })
    }

    async fn kv_prune(&self) -> StoreResult<u64> {
        in_transaction!(&self.pool, Begin::Write, |conn| {
            let n = sqlx::query(include_str!("sql/kv_prune.sql"))
                .bind(now_ms())
                .execute(conn)
                .await?
                .rows_affected();
            Ok::<_, TxError>(n)
        })
    }
}
