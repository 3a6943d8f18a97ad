//! Reading one row by id: the shape every by-id admin and workflow read shares.

use sqlx::mysql::MySqlRow;

use super::{MysqlStore, retry::idempotent, sql_with};
use crate::store::StoreResult;

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
}
