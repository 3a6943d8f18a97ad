//! Single-statement calls several admin and workflow methods share: a read of one row by id,
//! and a prune by age.

use std::time::Duration;

use rusqlite::OptionalExtension;

use super::SqliteStore;
use crate::{
    envelope::now_ms,
    store::{StoreResult, rules::offset_ms},
};

impl SqliteStore {
    /// Deletes, through `statement`, what ended more than `age` ago; returns how many rows.
    pub(super) async fn prune_older(
        &self,
        statement: &'static str,
        age: Duration,
    ) -> StoreResult<u64> {
        self.write_one(move |conn| {
            Ok(conn
                .prepare_cached(statement)?
                .execute([now_ms() - offset_ms(age)])? as u64)
        })
        .await
    }

    /// The one row `statement` finds for `id` on the read-only connection, if any.
    pub(super) async fn read_by_id<R: Send + 'static>(
        &self,
        statement: &'static str,
        id: &str,
        decode: fn(&rusqlite::Row<'_>) -> rusqlite::Result<R>,
    ) -> StoreResult<Option<R>> {
        let id = id.to_string();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(statement)?
                .query_row([id], decode)
                .optional()?)
        })
        .await
    }
}
