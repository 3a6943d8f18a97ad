//! The operator's part on SQLite: counts and listings on the read-only connection, changes to
//! queued and failed jobs on the writer.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params, params_from_iter, types::Value};

use super::{SqliteStore, queue, rows, search};
use crate::{
    envelope::now_ms,
    store::{
        AdminStore, CompletedJob, ExpiredWorker, FailedFilter, FailedJob, JobFilter, JobInfo,
        JobSearch, JobState, Page, QueueStats, RetrySelector, Stats, StoreResult,
        rules::{count, offset_ms},
    },
};

/// Rows one slice of a prune deletes at most.
const PRUNE_SLICE: i64 = 5_000;

#[async_trait]
impl AdminStore for SqliteStore {
    async fn stats(&self) -> StoreResult<Stats> {
        self.read(|conn| {
            // One read transaction: the counts agree with each other.
            let tx = conn.unchecked_transaction()?;
            let now = now_ms();
            let queues = tx
                .prepare_cached(include_str!("sql/stats_queues.sql"))?
                .query_map([now], |row| {
                    // A time stored as TEXT by another program has no age to show.
                    let oldest: Option<i64> = row.get(4).unwrap_or(None);
                    // A queue name stored as a BLOB never equals a worker's queue: show
                    // it apart from the TEXT name it reads like.
                    let (name, unreadable) = rows::text(row, 0, "queue")?;
                    Ok(QueueStats {
                        paused: false,
                        name: match unreadable {
                            None => name,
                            Some(_) => format!("{name} (unreadable name: no worker serves it)"),
                        },
                        pending: count(row.get(1)?),
                        delayed: count(row.get(2)?),
                        reserved: count(row.get(3)?),
                        oldest_ready_age_ms: oldest.map_or(0, |t| count(now - t)),
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let processed: Option<i64> = tx
                .prepare_cached(include_str!("sql/stats_processed.sql"))?
                .query_row([], |row| row.get(0))
                .optional()?;
            let failed: i64 = tx
                .prepare_cached(include_str!("sql/stats_failed.sql"))?
                .query_row([], |row| row.get(0))?;
            let workers = tx
                .prepare_cached(include_str!("sql/stats_workers.sql"))?
                .query_map([now], rows::worker_status)?
                .collect::<Result<Vec<_>, _>>()?;
            let expired_workers = tx
                .prepare_cached(include_str!("sql/stats_expired_workers.sql"))?
                .query_map([now], |row| {
                    Ok(ExpiredWorker::new(row.get(0)?, row.get(1)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            tx.finish()?;
            Ok(Stats {
                expired_workers,
                queues,
                processed: count(processed.unwrap_or(0)),
                failed: count(failed),
                workers,
            })
        })
        .await
    }

    async fn jobs(&self, filter: &JobFilter) -> StoreResult<Vec<JobInfo>> {
        let now = now_ms();
        // The fixed text is in `jobs.sql`; the filters a listing asks for are appended here.
        let mut sql = String::from(include_str!("sql/jobs.sql").trim_end());
        let mut args = vec![Value::Integer(now)];
        if let Some(queue) = &filter.queue {
            sql.push_str(" AND queue = ?");
            args.push(Value::Text(queue.clone()));
        }
        match filter.state {
            Some(JobState::Pending) => {
                sql.push_str(" AND worker_id IS NULL AND available_at <= ?");
                args.push(Value::Integer(now));
            }
            Some(JobState::Delayed) => {
                sql.push_str(" AND worker_id IS NULL AND available_at > ?");
                args.push(Value::Integer(now));
            }
            Some(JobState::Reserved) => sql.push_str(" AND worker_id IS NOT NULL"),
            None => {}
        }
        sql.push_str(" ORDER BY available_at, seq LIMIT ?");
        args.push(Value::Integer(i64::from(filter.limit.unwrap_or(100))));
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(&sql)?
                .query_map(params_from_iter(args), rows::job_info)?
                .collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn job(&self, id: &str) -> StoreResult<Option<JobInfo>> {
        let id = id.to_string();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(include_str!("sql/job.sql"))?
                .query_row(params![now_ms(), id], rows::job_info)
                .optional()?)
        })
        .await
    }

    async fn search_jobs(&self, search: &JobSearch) -> StoreResult<Page<JobInfo>> {
        let search = search.clone();
        self.read(move |conn| search::search_jobs(conn, &search, now_ms()))
            .await
    }

    async fn completed_jobs(&self, search: &JobSearch) -> StoreResult<Page<CompletedJob>> {
        let search = search.clone();
        self.read(move |conn| search::completed_jobs(conn, &search))
            .await
    }

    async fn prune_completed(&self, age: Duration) -> StoreResult<u64> {
        let before = now_ms() - offset_ms(age);
        let mut pruned = 0;
        // Slice by slice, each its own short write, so workers settling meanwhile wait for
        // one slice at most.
        for (statement, counts) in [
            (include_str!("sql/prune_completed.sql"), true),
            (include_str!("sql/prune_completed_tags.sql"), false),
        ] {
            loop {
                let n = self
                    .write_one(move |conn| {
                        Ok(conn
                            .prepare_cached(statement)?
                            .execute(params![before, PRUNE_SLICE])?)
                    })
                    .await?;
                if counts {
                    pruned += n as u64;
                }
                if (n as i64) < PRUNE_SLICE {
                    break;
                }
            }
        }
        Ok(pruned)
    }

    async fn delete_job(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_string();
        self.write(move |conn| {
            let deleted: Option<Option<String>> = conn
                .prepare_cached(include_str!("sql/delete_job.sql"))?
                .query_row([&id], |row| row.get(0))
                .optional()?;
            let Some(tags) = deleted else {
                return Ok(false);
            };
            queue::untag_job(conn, &id, tags.as_deref())?;
            // Its locks go with it, except the ones held until they expire.
            conn.prepare_cached(include_str!("sql/delete_job_locks.sql"))?
                .execute([&id])?;
            Ok(true)
        })
        .await
    }

    async fn run_job_now(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_string();
        let found = self
            .write_one(move |conn| {
                Ok(conn
                    .prepare_cached(include_str!("sql/run_job_now.sql"))?
                    .execute(params![now_ms(), id])?
                    > 0)
            })
            .await?;
        if found {
            self.wakeup.notify();
        }
        Ok(found)
    }

    async fn clear(&self, queue: &str) -> StoreResult<u64> {
        let queue = queue.to_string();
        self.write(move |conn| {
            conn.prepare_cached(include_str!("sql/clear_locks.sql"))?
                .execute([&queue])?;
            conn.prepare_cached(include_str!("sql/clear_tags.sql"))?
                .execute([&queue])?;
            Ok(conn
                .prepare_cached(include_str!("sql/clear.sql"))?
                .execute([&queue])? as u64)
        })
        .await
    }

    async fn failed_jobs(&self, filter: &FailedFilter) -> StoreResult<(Vec<FailedJob>, u64)> {
        let queue = filter.queue.clone();
        let limit = i64::from(filter.limit.unwrap_or(100));
        self.read(move |conn| {
            let tx = conn.unchecked_transaction()?;
            let jobs = tx
                .prepare_cached(include_str!("sql/failed_jobs.sql"))?
                .query_map(params![queue, limit], rows::failed_job)?
                .collect::<Result<Vec<_>, _>>()?;
            let total: i64 = tx
                .prepare_cached(include_str!("sql/failed_jobs_count.sql"))?
                .query_row([&queue], |row| row.get(0))?;
            tx.finish()?;
            Ok((jobs, count(total)))
        })
        .await
    }

    async fn failed_job(&self, id: &str) -> StoreResult<Option<FailedJob>> {
        self.read_by_id(include_str!("sql/failed_job.sql"), id, rows::failed_job)
            .await
    }

    async fn retry_failed(&self, selector: &RetrySelector) -> StoreResult<Vec<String>> {
        let (ids, queue, all, batch) = match selector {
            RetrySelector::Ids(ids) => (
                serde_json::to_string(ids).unwrap_or_default(),
                None,
                0,
                None,
            ),
            RetrySelector::All { queue } => ("[]".to_string(), queue.clone(), 1, None),
            RetrySelector::Batch(id) => ("[]".to_string(), None, 2, Some(id.clone())),
        };
        let retried = self
            .write(move |conn| {
                let retried = conn
                    .prepare_cached(include_str!("sql/retry_failed.sql"))?
                    .query_map(params![now_ms(), all, queue, ids, batch], |row| {
                        Ok((
                            row.get::<_, String>(0)?,
                            row.get::<_, Option<String>>(1)?,
                            row.get::<_, Option<String>>(2)?,
                        ))
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                let mut forget = conn.prepare_cached(include_str!("sql/forget_failed.sql"))?;
                let mut uncount =
                    conn.prepare_cached(include_str!("sql/retry_failed_uncount.sql"))?;
                for (id, batch_id, tags) in &retried {
                    forget.execute([id])?;
                    let tags = crate::store::tags_of_column(tags.as_deref());
                    queue::tag_job(conn, id, &tags)?;
                    if let Some(batch_id) = batch_id {
                        uncount.execute(params![batch_id, id])?;
                    }
                }
                Ok(retried.into_iter().map(|(id, ..)| id).collect::<Vec<_>>())
            })
            .await?;
        if !retried.is_empty() {
            self.wakeup.notify();
        }
        Ok(retried)
    }

    async fn forget_failed(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_string();
        self.write_one(move |conn| {
            Ok(conn
                .prepare_cached(include_str!("sql/forget_failed.sql"))?
                .execute([id])?
                > 0)
        })
        .await
    }

    async fn flush_failed(&self) -> StoreResult<u64> {
        self.write_one(|conn| {
            Ok(conn
                .prepare_cached(include_str!("sql/flush_failed.sql"))?
                .execute([])? as u64)
        })
        .await
    }

    async fn prune_failed(&self, age: Duration) -> StoreResult<u64> {
        self.prune_older(include_str!("sql/prune_failed.sql"), age)
            .await
    }

    async fn signal_restart(&self) -> StoreResult<i64> {
        self.write_one(|conn| {
            Ok(conn
                .prepare_cached(include_str!("sql/signal_restart.sql"))?
                .query_row([now_ms()], |row| row.get(0))?)
        })
        .await
    }
}
