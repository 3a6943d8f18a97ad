//! Pruning by age: the shape the failed-job and kept-result prunes share.

use std::time::Duration;

use super::{
    MysqlStore,
    retry::{Begin, TxError, in_transaction},
    sql,
};
use crate::store::{StoreResult, rules::offset_ms};

impl MysqlStore {
    /// Runs a delete `template` whose only parameter is an age in milliseconds (capped like
    /// every offset); returns the rows it deleted.
    pub(super) async fn prune_older_than(&self, template: &str, age: Duration) -> StoreResult<u64> {
        let age = offset_ms(age);
        in_transaction!(&self.pool, Begin::Write, |conn| {
            let n = sqlx::query(sql(template))
                .bind(age)
                .execute(conn)
                .await?
                .rows_affected();
            Ok::<_, TxError>(n)
        })
    }
}
