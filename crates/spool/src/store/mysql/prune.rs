//! Pruning by age: the shape the failed-job and kept-result prunes share.

use std::time::Duration;

use super::MysqlStore;
use crate::store::{StoreResult, rules::offset_ms};

impl MysqlStore {
    /// Runs a delete `template` whose only parameter is an age in milliseconds (capped like
    /// every offset); returns the rows it deleted.
    pub(super) async fn prune_older_than(&self, template: &str, age: Duration) -> StoreResult<u64> {
        self.write_one(template, offset_ms(age)).await
    }
}
