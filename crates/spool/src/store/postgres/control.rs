//! The control part on PostgreSQL: marks and epochs in the `control` table.

use async_trait::async_trait;

use super::PostgresStore;
use crate::store::{
    Control, ControlEpoch, ControlKind, ControlStore, Record, RecordKind, StoreResult,
};

#[async_trait]
impl ControlStore for PostgresStore {
    async fn control(&self) -> StoreResult<Control> {
        let mut conn = self.unit(&self.pool).await?;
        let rows: Vec<(String, String, i64)> = self
            .query_as(include_str!("sql/control.sql"))
            .fetch_all(&mut *conn)
            .await?;
        conn.done().await?;
        Ok(Control::from_rows(rows))
    }

    async fn set_mark(
        &self,
        kind: ControlKind,
        name: &str,
        on: bool,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let mut conn = self.unit(&self.pool).await?;
        let query = if on {
            self.query(include_str!("sql/control_set.sql"))
                .bind(kind.as_str())
                .bind(name)
                .bind(now_ms)
        } else {
            self.query(include_str!("sql/control_unset.sql"))
                .bind(kind.as_str())
                .bind(name)
        };
        let changed = query.execute(&mut *conn).await?.rows_affected();
        conn.done().await?;
        Ok(changed > 0)
    }

    async fn clear_marks(&self, kind: ControlKind) -> StoreResult<u64> {
        let mut conn = self.unit(&self.pool).await?;
        let n = self
            .query(include_str!("sql/control_clear.sql"))
            .bind(kind.as_str())
            .execute(&mut *conn)
            .await?
            .rows_affected();
        conn.done().await?;
        Ok(n)
    }

    async fn bump_epoch(&self, epoch: ControlEpoch, now_ms: i64) -> StoreResult<i64> {
        let mut conn = self.unit(&self.pool).await?;
        let value: i64 = self
            .query_scalar(include_str!("sql/control_bump.sql"))
            .bind(epoch.as_str())
            .bind(now_ms)
            .fetch_one(&mut *conn)
            .await?;
        conn.done().await?;
        Ok(value)
    }

    async fn put_record(
        &self,
        kind: RecordKind,
        name: &str,
        value: i64,
        info: Option<&str>,
    ) -> StoreResult<()> {
        let mut conn = self.unit(&self.pool).await?;
        self.query(include_str!("sql/control_put.sql"))
            .bind(kind.as_str())
            .bind(name)
            .bind(value)
            .bind(info)
            .execute(&mut *conn)
            .await?;
        conn.done().await?;
        Ok(())
    }

    async fn records(&self, kind: RecordKind) -> StoreResult<Vec<Record>> {
        let mut conn = self.unit(&self.pool).await?;
        let rows: Vec<(String, i64, Option<String>)> = self
            .query_as(include_str!("sql/control_records.sql"))
            .bind(kind.as_str())
            .fetch_all(&mut *conn)
            .await?;
        conn.done().await?;
        Ok(rows
            .into_iter()
            .map(|(name, value, info)| Record { name, value, info })
            .collect())
    }

    async fn delete_record(&self, kind: RecordKind, name: &str) -> StoreResult<bool> {
        let mut conn = self.unit(&self.pool).await?;
        let n = self
            .query(include_str!("sql/control_unset.sql"))
            .bind(kind.as_str())
            .bind(name)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        conn.done().await?;
        Ok(n > 0)
    }
}
