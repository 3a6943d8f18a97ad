//! The control part on SQLite: marks and epochs in `spool_control`, read on the read-only
//! connection, written on the writer.

use async_trait::async_trait;
use rusqlite::params;

use super::SqliteStore;
use crate::store::{
    Control, ControlEpoch, ControlKind, ControlStore, Record, RecordKind, StoreResult,
};

#[async_trait]
impl ControlStore for SqliteStore {
    async fn control(&self) -> StoreResult<Control> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(include_str!("sql/control.sql"))?;
            let rows = statement
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Control::from_rows(rows))
        })
        .await
    }

    async fn set_mark(
        &self,
        kind: ControlKind,
        name: &str,
        on: bool,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let name = name.to_string();
        self.write_one(move |conn| {
            let changed = if on {
                conn.prepare_cached(include_str!("sql/control_set.sql"))?
                    .execute(params![kind.as_str(), name, now_ms])?
            } else {
                conn.prepare_cached(include_str!("sql/control_unset.sql"))?
                    .execute(params![kind.as_str(), name])?
            };
            Ok(changed > 0)
        })
        .await
    }

    async fn clear_marks(&self, kind: ControlKind) -> StoreResult<u64> {
        self.write_one(move |conn| {
            Ok(conn
                .prepare_cached(include_str!("sql/control_clear.sql"))?
                .execute([kind.as_str()])? as u64)
        })
        .await
    }

    async fn bump_epoch(&self, epoch: ControlEpoch, now_ms: i64) -> StoreResult<i64> {
        self.write_one(move |conn| {
            Ok(conn
                .prepare_cached(include_str!("sql/control_bump.sql"))?
                .query_row(params![epoch.as_str(), now_ms], |row| row.get(0))?)
        })
        .await
    }

    async fn put_record(
        &self,
        kind: RecordKind,
        name: &str,
        value: i64,
        info: Option<&str>,
    ) -> StoreResult<()> {
        let (name, info) = (name.to_string(), info.map(str::to_string));
        self.write_one(move |conn| {
            conn.prepare_cached(include_str!("sql/control_put.sql"))?
                .execute(params![kind.as_str(), name, value, info])?;
            Ok(())
        })
        .await
    }

    async fn records(&self, kind: RecordKind) -> StoreResult<Vec<Record>> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(include_str!("sql/control_records.sql"))?;
            let rows = statement
                .query_map([kind.as_str()], |row| {
                    Ok(Record {
                        name: row.get(0)?,
                        value: row.get(1)?,
                        info: row.get(2)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn delete_record(&self, kind: RecordKind, name: &str) -> StoreResult<bool> {
        let name = name.to_string();
        self.write_one(move |conn| {
            Ok(conn
                .prepare_cached(include_str!("sql/control_unset.sql"))?
                .execute(params![kind.as_str(), name])?
                > 0)
        })
        .await
    }
}
