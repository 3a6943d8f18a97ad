//! The control part on MySQL: marks and epochs in `spool_control`.

use async_trait::async_trait;

use super::{
    MysqlStore,
    retry::{Begin, TxError, idempotent, in_transaction},
};
use crate::store::{
    Control, ControlEpoch, ControlKind, ControlStore, Record, RecordKind, StoreResult,
};

#[async_trait]
impl ControlStore for MysqlStore {
    async fn control(&self) -> StoreResult<Control> {
        let rows: Vec<(String, String, i64)> = idempotent!(&self.pool, |conn| {
            sqlx::query_as(include_str!("sql/control.sql"))
                .fetch_all(&mut *conn)
                .await
        })?;
        Ok(Control::from_rows(rows))
    }

    async fn set_mark(
        &self,
        kind: ControlKind,
        name: &str,
        on: bool,
        now_ms: i64,
    ) -> StoreResult<bool> {
        in_transaction!(&self.pool, Begin::Write, |conn| {
            let query = if on {
                sqlx::query(include_str!("sql/control_set.sql"))
                    .bind(kind.as_str())
                    .bind(name)
                    .bind(now_ms)
            } else {
                sqlx::query(include_str!("sql/control_unset.sql"))
                    .bind(kind.as_str())
                    .bind(name)
            };
            let changed = query.execute(conn).await?.rows_affected();
            Ok::<_, TxError>(changed > 0)
        })
    }

    async fn clear_marks(&self, kind: ControlKind) -> StoreResult<u64> {
        in_transaction!(&self.pool, Begin::Write, |conn| {
            let n = sqlx::query(include_str!("sql/control_clear.sql"))
                .bind(kind.as_str())
                .execute(conn)
                .await?
                .rows_affected();
            Ok::<_, TxError>(n)
        })
    }

    async fn bump_epoch(&self, epoch: ControlEpoch, now_ms: i64) -> StoreResult<i64> {
        in_transaction!(&self.pool, Begin::Write, |conn| {
            sqlx::query(include_str!("sql/control_bump.sql"))
                .bind(epoch.as_str())
                .bind(now_ms)
                .execute(&mut *conn)
                .await?;
            let value: i64 = sqlx::query_scalar(include_str!("sql/control_epoch.sql"))
                .bind(epoch.as_str())
                .fetch_one(&mut *conn)
                .await?;
            Ok::<_, TxError>(value)
        })
    }

    async fn put_record(
        &self,
        kind: RecordKind,
        name: &str,
        value: i64,
        info: Option<&str>,
    ) -> StoreResult<()> {
        in_transaction!(&self.pool, Begin::Write, |conn| {
            sqlx::query(include_str!("sql/control_put.sql"))
                .bind(kind.as_str())
                .bind(name)
                .bind(value)
                .bind(info)
                .execute(conn)
                .await?;
            Ok::<_, TxError>(())
        })
    }

    async fn records(&self, kind: RecordKind) -> StoreResult<Vec<Record>> {
        let rows: Vec<(String, i64, Option<String>)> = idempotent!(&self.pool, |conn| {
            sqlx::query_as(include_str!("sql/control_records.sql"))
                .bind(kind.as_str())
                .fetch_all(&mut *conn)
                .await
        })?;
        Ok(rows
            .into_iter()
            .map(|(name, value, info)| Record { name, value, info })
            .collect())
    }

    async fn delete_record(&self, kind: RecordKind, name: &str) -> StoreResult<bool> {
        in_transaction!(&self.pool, Begin::Write, |conn| {
            let n = sqlx::query(include_str!("sql/control_unset.sql"))
                .bind(kind.as_str())
                .bind(name)
                .execute(conn)
                .await?
                .rows_affected();
            Ok::<_, TxError>(n > 0)
        })
    }
}
