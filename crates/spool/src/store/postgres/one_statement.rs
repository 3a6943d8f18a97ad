//! Single-statement calls several admin and workflow methods share: a read or a write of one
//! row by id, and a prune by age.

use std::time::Duration;

use sqlx::postgres::PgRow;

use super::PostgresStore;
use crate::store::{StoreResult, rules::offset_ms};

impl PostgresStore {
    /// Runs a read `template` whose only parameter is `id`, and decodes the row it finds (if
    /// any) with `decode`.
    pub(super) async fn row_by_id<T>(
        &self,
        template: &str,
        id: &str,
        decode: fn(&PgRow) -> Result<T, sqlx::Error>,
    ) -> StoreResult<Option<T>> {
        let mut conn = self.unit(&self.pool).await?;
        let row = self
            .query(template)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        conn.done().await?;
        Ok(row.as_ref().map(decode).transpose()?)
    }

    /// Runs a write `template` whose only parameter is `id`; whether it changed a row.
    pub(super) async fn write_by_id(&self, template: &str, id: &str) -> StoreResult<bool> {
        let mut conn = self.unit(&self.pool).await?;
        let n = self
            .query(template)
            .bind(id)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        conn.done().await?;
        Ok(n > 0)
    }

    /// Runs a delete `template` whose only parameter is an age in milliseconds (capped like
    /// every offset); returns the rows it deleted.
    pub(super) async fn prune_older_than(&self, template: &str, age: Duration) -> StoreResult<u64> {
        let mut conn = self.unit(&self.pool).await?;
        let n = self
            .query(template)
            .bind(offset_ms(age))
            .execute(&mut *conn)
            .await?
            .rows_affected();
        conn.done().await?;
        Ok(n)
    }
}
