//! The key-value part on SQLite: values in `spool_kv`, compare-and-set in one statement on
//! the writer, reads on the read-only connection.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use crate::{
    envelope::now_ms,
    store::{
        KeyValueStore, KvEntry, KvExpect, StoreResult,
        contract::kv::{check_kv_key, expiry, prefix_end},
    },
};

#[async_trait]
impl KeyValueStore for SqliteStore {
    async fn kv_get(&self, key: &str) -> StoreResult<Option<KvEntry>> {
        let key = key.to_string();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(include_str!("sql/kv_get.sql"))?
                .query_row(params![key, now_ms()], |row| {
                    Ok(KvEntry {
                        value: row.get(0)?,
                        version: row.get(1)?,
                        expires_at_ms: row.get(2)?,
                    })
                })
                .optional()?)
        })
        .await
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
        let (key, value) = (key.to_string(), value.to_string());
        self.write_one(move |conn| {
            let now = now_ms();
            let version = match expect {
                KvExpect::Any | KvExpect::Absent => conn
                    .prepare_cached(include_str!("sql/kv_put.sql"))?
                    .query_row(
                        params![
                            key,
                            value,
                            expires_at_ms,
                            i64::from(expect == KvExpect::Absent),
                            now
                        ],
                        |row| row.get(0),
                    )
                    .optional()?,
                KvExpect::Version(expected) => conn
                    .prepare_cached(include_str!("sql/kv_swap.sql"))?
                    .query_row(params![key, value, expires_at_ms, expected, now], |row| {
                        row.get(0)
                    })
                    .optional()?,
            };
            Ok(version)
        })
        .await
    }

    async fn kv_list(&self, prefix: &str, limit: u32) -> StoreResult<Vec<(String, KvEntry)>> {
        let (start, end) = (prefix.to_string(), prefix_end(prefix));
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(include_str!("sql/kv_list.sql"))?;
            let rows = statement
                .query_map(params![start, end, now_ms(), limit], |row| {
                    Ok((
                        row.get(0)?,
                        KvEntry {
                            value: row.get(1)?,
                            version: row.get(2)?,
                            expires_at_ms: row.get(3)?,
                        },
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn kv_delete(&self, prefix: &str) -> StoreResult<u64> {
        let (start, end) = (prefix.to_string(), prefix_end(prefix));
        self.write_one(move |conn| {
            Ok(conn
                .prepare_cached(include_str!("sql/kv_delete.sql"))?
                .execute(params![start, end])? as u64)
        })
        .await
    }

    async fn kv_prune(&self) -> StoreResult<u64> {
        self.write_one(move |conn| {
            Ok(conn
                .prepare_cached(include_str!("sql/kv_prune.sql"))?
                .execute([now_ms()])? as u64)
        })
        .await
    }
}
