//! Searches and the history's pruning on PostgreSQL: the statements in `sql/search_jobs*.sql`
//! and `sql/completed_jobs*.sql`, run by the logic the SQL server stores share
//! (`store/sql/search.rs`) on one snapshot, so the pages of one call agree.

use std::time::Duration;

use async_trait::async_trait;

use super::{PostgresStore, pooler::Unit};
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
    clock: "WITH clock AS MATERIALIZED (SELECT {schema}.now_ms() AS ms)",
};

/// Rows one slice of a prune deletes at most.
const PRUNE_SLICE: i64 = 5_000;

/// A search's statements on one connection.
struct OnConnection<'a> {
    store: &'a PostgresStore,
    conn: Unit,
}

#[async_trait]
impl Fetch for OnConnection<'_> {
    async fn fetch<T: Send + 'static>(
        &mut self,
        statement: Statement,
        decode: Decode<T>,
    ) -> StoreResult<Vec<T>> {
        let text = numbered(&statement.text);
        let mut query = self.store.query(&text);
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

/// `text` with its `?` placeholders numbered `$1`, `$2`, ... (no statement here holds a `?`
/// otherwise).
fn numbered(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut n = 0;
    for c in text.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

impl PostgresStore {
    /// Runs `search` (see `AdminStore::search_jobs`).
    pub(super) async fn search_queued(&self, search: &JobSearch) -> StoreResult<Page<JobInfo>> {
        let mut on = OnConnection {
            store: self,
            conn: Unit::Tx(self.pool.begin_with(super::admin::SNAPSHOT).await?),
        };
        let page = search::search_jobs(&mut on, &TEMPLATES, search).await?;
        on.conn.done().await?;
        Ok(page)
    }

    /// Runs `search` on the history (see `AdminStore::completed_jobs`).
    pub(super) async fn search_completed(
        &self,
        search: &JobSearch,
    ) -> StoreResult<Page<CompletedJob>> {
        let mut on = OnConnection {
            store: self,
            conn: self.unit(&self.pool).await?,
        };
        let page = search::completed_jobs(&mut on, &TEMPLATES, search).await?;
        on.conn.done().await?;
        Ok(page)
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
                let mut conn = self.unit(&self.pool).await?;
                let n = self
                    .query(statement)
                    .bind(offset_ms(age))
                    .bind(PRUNE_SLICE)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                conn.done().await?;
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

#[cfg(test)]
mod tests {
    use super::numbered;

    #[test]
    fn placeholders_are_numbered_in_order() {
        assert_eq!(
            numbered("a = ? AND (b, c) > (?, ?)"),
            "a = $1 AND (b, c) > ($2, $3)"
        );
    }
}
