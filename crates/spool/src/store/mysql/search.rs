//! Searches and the history's pruning on MySQL: the statements in `sql/search_jobs*.sql` and
//! `sql/completed_jobs*.sql`, run by the logic the SQL server stores share
//! (`store/sql/search.rs`) on one connection.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::MySqlConnection;

use super::{
    MysqlStore,
    retry::{Begin, TxError, idempotent, in_transaction},
    sql,
};
use crate::store::{
    CompletedJob, JobInfo, JobSearch, Page, StoreResult,
    rules::offset_ms,
    sql::search::{self, Arg, Decode, Fetch, Statement, Templates},
};

/// The statements a search runs.
const TEMPLATES: Templates = Templates {
    jobs: include_str!("sql/search_jobs.sql"),
    waiting: include_str!("sql/search_jobs_waiting.sql"),
    reserved: include_str!("sql/search_jobs_reserved.sql"),
    tagged: include_str!("sql/search_jobs_tagged.sql"),
    queues: include_str!("sql/search_jobs_queues.sql"),
    completed: include_str!("sql/completed_jobs.sql"),
    completed_all: include_str!("sql/completed_jobs_all.sql"),
    completed_tagged: include_str!("sql/completed_jobs_tagged.sql"),
    clock: "WITH clock AS (SELECT {now} AS ms)",
};

/// Rows one slice of a prune deletes at most.
const PRUNE_SLICE: i64 = 5_000;

/// A search's statements on one connection.
struct OnConnection<'c> {
    conn: &'c mut MySqlConnection,
}

#[async_trait]
impl Fetch for OnConnection<'_> {
    async fn fetch<T: Send + 'static>(
        &mut self,
        statement: Statement,
        decode: Decode<T>,
    ) -> StoreResult<Vec<T>> {
        let mut query = sqlx::query(sql(&statement.text));
        for arg in statement.args {
            query = match arg {
                Arg::Text(text) => query.bind(text),
                Arg::Int(n) => query.bind(n),
            };
        }
        let found = query.fetch_all(&mut *self.conn).await?;
        Ok(found
            .iter()
            .map(|row| decode(row))
            .collect::<Result<_, _>>()?)
    }
}

impl MysqlStore {
    /// Runs `search` (see `AdminStore::search_jobs`).
    pub(super) async fn search_queued(&self, search: &JobSearch) -> StoreResult<Page<JobInfo>> {
        // One snapshot, so the statements of one search agree.
        in_transaction!(&self.pool, Begin::Snapshot, |conn| {
            search::search_jobs(&mut OnConnection { conn }, &TEMPLATES, search)
                .await
                .map_err(TxError::Store)
        })
    }

    /// Runs `search` on the history (see `AdminStore::completed_jobs`).
    pub(super) async fn search_completed(
        &self,
        search: &JobSearch,
    ) -> StoreResult<Page<CompletedJob>> {
        in_transaction!(&self.pool, Begin::Snapshot, |conn| {
            search::completed_jobs(&mut OnConnection { conn }, &TEMPLATES, search)
                .await
                .map_err(TxError::Store)
        })
    }

    /// Deletes the history older than `age`, slice by slice (see
    /// `AdminStore::prune_completed`).
    pub(super) async fn prune_history(&self, age: Duration) -> StoreResult<u64> {
        let mut pruned = 0;
        for (statement, counts) in [
            (include_str!("sql/prune_completed.sql"), true),
            (include_str!("sql/prune_completed_tags.sql"), false),
        ] {
            loop {
                let n = idempotent!(&self.pool, |conn| {
                    Ok::<_, sqlx::Error>(
                        sqlx::query(sql(statement))
                            .bind(offset_ms(age))
                            .bind(PRUNE_SLICE)
                            .execute(&mut *conn)
                            .await?
                            .rows_affected(),
                    )
                })?;
                if counts {
                    pruned += n;
                }
                if n < PRUNE_SLICE as u64 {
                    break;
                }
            }
        }
        Ok(pruned)
    }
}
