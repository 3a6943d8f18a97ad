//! The key-value part on PostgreSQL: values in the `kv` table, compare-and-set in one
//! statement.

use std::time::Duration;

use async_trait::async_trait;

use super::PostgresStore;
use crate::{
    envelope::now_ms,
    store::{
        KeyValueStore, KvEntry, KvExpect, StoreResult,
        contract::kv::{check_kv_key, expiry, prefix_end},
    },
};

/// A stored row: value, version, expiry.
type Row = (String, i64, Option<i64>);

fn entry((value, version, expires_at_ms): Row) -> KvEntry {
    KvEntry {
        value,
        version,
        expires_at_ms,
    }
}

#[async_trait]
impl KeyValueStore for PostgresStore {
    async fn kv_get(&self, key: &str) -> StoreResult<Option<KvEntry>> {
        let mut conn = self.unit(&self.pool).await?;
        let row: Option<Row> = self
            .query_as(include_str!("sql/kv_get.sql"))
            .bind(key)
            .bind(now_ms())
            .fetch_optional(&mut *conn)
            .await?;
        conn.done().await?;
        Ok(row.map(entry))
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
        let mut conn = self.unit(&self.pool).await?;
        let query = match expect {
            KvExpect::Any | KvExpect::Absent => self
                .query_scalar(include_str!("sql/kv_put.sql"))
                .bind(key)
                .bind(value)
                .bind(expires_at_ms)
                .bind(expect == KvExpect::Absent),
            KvExpect::Version(expected) => self
                .query_scalar(include_str!("sql/kv_swap.sql"))
                .bind(key)
                .bind(value)
                .bind(expires_at_ms)
                .bind(expected),
        };
        let version: Option<i64> = query.bind(now_ms()).fetch_optional(&mut *conn).await?;
        conn.done().await?;
        Ok(version)
    }

    async fn kv_list(&self, prefix: &str, limit: u32) -> StoreResult<Vec<(String, KvEntry)>> {
        let mut conn = self.unit(&self.pool).await?;
        let rows: Vec<(String, String, i64, Option<i64>)> = self
            .query_as(include_str!("sql/kv_list.sql"))
            .bind(prefix)
            .bind(prefix_end(prefix))
            .bind(now_ms())
            .bind(i64::from(limit))
            .fetch_all(&mut *conn)
            .await?;
        conn.done().await?;
        Ok(rows
            .into_iter()
            .map(|(key, value, version, expires)| (key, entry((value, version, expires))))
            .collect())
    }

    async fn kv_delete(&self, prefix: &str) -> StoreResult<u64> {
        let mut conn = self.unit(&self.pool).await?;
        let deleted = self
            .query(include_str!("sql/kv_delete.sql"))
            .bind(prefix)
            .bind(prefix_end(prefix))
            .execute(&mut *conn)
            .await?
            .rows_affected();
        conn.done().await?;
        Ok(deleted)
    }

    async fn kv_prune(&self) -> StoreResult<u64> {
        let mut conn = self.unit(&self.pool).await?;
        let pruned = self
            .query(include_str!("sql/kv_prune.sql"))
            .bind(now_ms())
            .execute(&mut *conn)
            .await?
            .rows_affected();
        conn.done().await?;
        Ok(pruned)
    }
}
