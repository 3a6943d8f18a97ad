//! The per-job workflow state on MySQL: unique locks, concurrency slots held by a job and kept
//! results. The functions run inside the caller's transaction (a claim, a settlement, a reap)
//! and do nothing (no statement) when given nothing to do, so plain jobs pay for none of it.

use sqlx::MySqlConnection;

use crate::store::mysql::{ROWS_PER_STATEMENT, in_list, list, sql, sql_with, tuples, values};

/// Releases the unique locks held `until` the given moment (`done`, `processing`) that these
/// `(key, owner)` pairs own. Only the owner releases a lock: a duplicate that was refused
/// never took it, and a lock another job took since is left alone.
pub(in crate::store::mysql) async fn release_locks(
    conn: &mut MySqlConnection,
    locks: &[(&str, &str)],
    until: &'static str,
) -> Result<(), sqlx::Error> {
    for chunk in locks.chunks(ROWS_PER_STATEMENT) {
        // `name IN` makes it a range of the primary key; the pairs are the ownership check.
        let statement = sql_with(
            include_str!("../sql/release_locks.sql"),
            &[
                ("keys", &list(chunk.len())),
                ("pairs", &tuples(chunk.len(), 2)),
            ],
        );
        let mut query = sqlx::query(statement).bind(until);
        for (key, _) in chunk {
            query = query.bind(*key);
        }
        for (key, owner) in chunk {
            query = query.bind(*key).bind(*owner);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Frees every concurrency slot these jobs hold.
pub(in crate::store::mysql) async fn free_slots(
    conn: &mut MySqlConnection,
    holders: &[&str],
) -> Result<(), sqlx::Error> {
    for chunk in holders.chunks(ROWS_PER_STATEMENT) {
        let query = in_list(
            include_str!("../sql/free_slots.sql"),
            "holders",
            chunk.iter().copied(),
        );
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Indexes completed jobs' history records under their tags: `(tag, id)` pairs, completed
/// now (no statement for none).
pub(in crate::store::mysql) async fn tag_completed(
    conn: &mut MySqlConnection,
    tags: &[(&str, &str)],
) -> Result<(), sqlx::Error> {
    for chunk in tags.chunks(ROWS_PER_STATEMENT) {
        // The file holds the first row of the derived table; the others follow it.
        let more = " UNION ALL SELECT ?, ?".repeat(chunk.len() - 1);
        let statement = sql_with(include_str!("../sql/tag_completed.sql"), &[("more", &more)]);
        let mut query = sqlx::query(statement);
        for (tag, id) in chunk {
            query = query.bind(*tag).bind(*id);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// A completed job's result, to keep.
#[derive(Debug)]
pub(in crate::store::mysql) struct KeptResult<'a> {
    pub(in crate::store::mysql) id: &'a str,
    pub(in crate::store::mysql) queue: &'a str,
    pub(in crate::store::mysql) job: &'a str,
    pub(in crate::store::mysql) batch_id: Option<&'a str>,
    pub(in crate::store::mysql) result: &'a str,
}

/// Keeps completed jobs' results (replacing an older result of the same id).
pub(in crate::store::mysql) async fn keep_results(
    conn: &mut MySqlConnection,
    results: &[KeptResult<'_>],
) -> Result<(), sqlx::Error> {
    for chunk in results.chunks(ROWS_PER_STATEMENT) {
        let mut query = sqlx::query(values(include_str!("../sql/keep_results.sql"), chunk.len()));
        for kept in chunk {
            query = query
                .bind(kept.id)
                .bind(kept.queue)
                .bind(kept.job)
                .bind(kept.batch_id)
                .bind(kept.result);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// The reaper's share of workflow state: frees the slots of workers whose lease is gone, and
/// drops expired unique locks (periodic jobs leave one per tick).
pub(in crate::store::mysql) async fn reap_workflow_state(
    conn: &mut MySqlConnection,
) -> Result<(), sqlx::Error> {
    sqlx::query(sql(include_str!("../sql/reap_slots.sql")))
        .execute(&mut *conn)
        .await?;
    sqlx::query(sql(include_str!("../sql/reap_locks.sql")))
        .execute(&mut *conn)
        .await?;
    Ok(())
}
