//! The control part on SQLite: marks and epochs in `spool_control`, read on the read-only
//! connection, written on the writer.

use async_trait::async_trait;
use rusqlite::params;

use super::SqliteStore;
use crate::store::{Control, ControlEpoch, ControlKind, ControlStore, StoreResult};

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
}
