//! Single-statement calls several admin and workflow methods share: a read or a write of one
//! row by id, and a prune by age.

use std::time::Duration;

use sqlx::{Encode, MySql, Type, mysql::MySqlRow};

use super::{
    MysqlStore,
    retry::{Begin, TxError, idempotent, in_transaction},
    sql, sql_with,
};
use crate::store::{StoreResult, rules::offset_ms};

impl MysqlStore {
    /// Runs a read `template` whose `{columns}` are `columns` and whose only parameter is
    /// `id`, and decodes the row it finds (if any) with `decode`.
    pub(super) async fn row_by_id<T>(
        &self,
        template: &str,
        columns: &str,
        id: &str,
        decode: fn(&MySqlRow) -> Result<T, sqlx::Error>,
    ) -> StoreResult<Option<T>> {
        idempotent!(&self.pool, |conn| {
            let row = sqlx::query(sql_with(template, &[("columns", columns)]))
                .bind(id)
                .fetch_optional(conn)
                .await?;
            row.as_ref().map(decode).transpose()
        })
    }

    /// Runs a write `template` whose only parameter is `id` in its own transaction; returns
    /// whether it changed a row.
    pub(super) async fn change_by_id(&self, template: &str, id: &str) -> StoreResult<bool> {
        Ok(self.write_one(template, id).await? > 0)
    }

    /// Runs a write `template` whose only parameter is `value` in its own transaction; returns
    /// the rows it changed.
    pub(super) async fn write_one<V>(&self, template: &str, value: V) -> StoreResult<u64>
    where
        V: for<'q> Encode<'q, MySql> + Type<MySql> + Copy + Send,
    {
        in_transaction!(&self.pool, Begin::Write, |conn| {
            let n = sqlx::query(sql(template))
                .bind(value)
                .execute(conn)
                .await?
                .rows_affected();
            Ok::<_, TxError>(n)
        })
    }

    /// Runs a delete `template` whose only parameter is an age in milliseconds (capped like
    /// every offset); returns the rows it deleted.
    pub(super) async fn prune_older_than(&self, template: &str, age: Duration) -> StoreResult<u64> {
        self.write_one(template, offset_ms(age)).await
    }
}
