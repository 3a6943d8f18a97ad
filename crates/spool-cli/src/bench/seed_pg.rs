//! The dashboard bench's failed and completed records on PostgreSQL, written in bulk: pushing
//! 2.5 M jobs and failing them through claim-and-fail batches took most of the 22 minutes a
//! 10 M seeding took. Each batch's records go straight into the `failed` and `completed`
//! tables, as the store's settling statements write them for a job claimed once (attempt 1,
//! the envelope and tags kept, the tag rows and the processed counter written alongside);
//! the `enqueued` metric the push would have counted is added at the end.

use std::collections::BTreeMap;

use spool::store::NewJob;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

use crate::CliError;

pub(super) struct Records {
    conn: PgConnection,
    schema: String,
    /// Jobs "pushed" by queue and job name, for the `enqueued` metric.
    enqueued: BTreeMap<(String, String), i64>,
}

fn seeding(e: sqlx::Error) -> CliError {
    CliError::Usage(format!("seeding PostgreSQL in bulk: {e}"))
}

impl Records {
    /// Connects to `url`'s database, where the store's tables are in `schema` (already
    /// migrated). The statements name the schema: it is the bench's own constant, never input.
    pub(super) async fn connect(url: &str, schema: &str) -> Result<Records, CliError> {
        let conn = PgConnection::connect(url).await.map_err(seeding)?;
        Ok(Records {
            conn,
            schema: format!("\"{schema}\""),
            enqueued: BTreeMap::new(),
        })
    }

    fn count(&mut self, jobs: &[NewJob]) {
        for j in jobs {
            *self
                .enqueued
                .entry((j.queue.clone(), j.job.clone()))
                .or_default() += 1;
        }
    }

    /// `jobs` failed at their first attempt with the error "seeded failure" and no causes.
    pub(super) async fn failed(&mut self, jobs: &[NewJob]) -> Result<(), CliError> {
        self.count(jobs);
        let c = Columns::of(jobs);
        let sql = format!(
            "INSERT INTO {s}.failed (id, queue, job, envelope, error, causes, attempts, \
                                     failed_at, batch_id, tags)
             SELECT n.id, n.queue, n.job, n.envelope, 'seeded failure', '[]', 1, c.ms,
                    n.batch_id, n.tags
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::text[]) AS n (id, queue, job, envelope, batch_id, tags),
                  (SELECT {s}.now_ms() AS ms) AS c",
            s = self.schema
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(&c.ids)
            .bind(&c.queues)
            .bind(&c.names)
            .bind(&c.envelopes)
            .bind(&c.batches)
            .bind(&c.tags)
            .execute(&mut self.conn)
            .await
            .map_err(seeding)?;
        Ok(())
    }

    /// `jobs` completed at their first attempt: the history's short records and their tag
    /// rows, and the processed counter.
    pub(super) async fn completed(&mut self, jobs: &[NewJob]) -> Result<(), CliError> {
        self.count(jobs);
        let c = Columns::of(jobs);
        let sql = format!(
            "WITH clock AS MATERIALIZED (SELECT {s}.now_ms() AS ms),
             n AS MATERIALIZED (
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[],
                                      $5::text[]) AS n (id, queue, job, batch_id, tags)),
             history AS (
                 INSERT INTO {s}.completed (id, queue, job, batch_id, tags, attempts,
                                            enqueued_at, started_at, completed_at)
                 SELECT n.id, n.queue, n.job, n.batch_id, n.tags, 1, c.ms, c.ms, c.ms
                 FROM n, clock c),
             history_tags AS (
                 INSERT INTO {s}.completed_tags (tag, completed_at, id)
                 SELECT t.tag, c.ms, n.id
                 FROM n, clock c, unnest(string_to_array(n.tags, ',')) AS t (tag)
                 WHERE n.tags IS NOT NULL)
             INSERT INTO {s}.meta (name, value)
             SELECT 'processed', COUNT(*) FROM n HAVING COUNT(*) > 0
             ON CONFLICT (name) DO UPDATE SET value = meta.value + excluded.value",
            s = self.schema
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(&c.ids)
            .bind(&c.queues)
            .bind(&c.names)
            .bind(&c.batches)
            .bind(&c.tags)
            .execute(&mut self.conn)
            .await
            .map_err(seeding)?;
        Ok(())
    }

    /// Adds the `enqueued` metric of every job recorded, as the push counts it (all time, the
    /// minute and the hour), and closes the connection.
    pub(super) async fn finish(mut self) -> Result<(), CliError> {
        let (mut queues, mut names, mut counts) = (Vec::new(), Vec::new(), Vec::new());
        for ((queue, job), n) in std::mem::take(&mut self.enqueued) {
            queues.push(queue);
            names.push(job);
            counts.push(n);
        }
        let sql = format!(
            "INSERT INTO {s}.metrics (res, at, queue, job, series, bucket, n)
             SELECT r.res, CASE WHEN r.res = 0 THEN 0 ELSE c.ms - c.ms % (r.res * 1000) END,
                    n.queue, n.job, 'enqueued', 0, n.n
             FROM UNNEST($1::text[], $2::text[], $3::bigint[]) AS n (queue, job, n),
                  (SELECT {s}.now_ms() AS ms) AS c, (VALUES (0), (60), (3600)) AS r (res)
             ON CONFLICT (res, at, queue, job, series, bucket)
             DO UPDATE SET n = metrics.n + excluded.n",
            s = self.schema
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(&queues)
            .bind(&names)
            .bind(&counts)
            .execute(&mut self.conn)
            .await
            .map_err(seeding)?;
        self.conn.close().await.map_err(seeding)?;
        Ok(())
    }
}

/// A batch's columns, as the store's push binds them.
struct Columns<'a> {
    ids: Vec<&'a str>,
    queues: Vec<&'a str>,
    names: Vec<&'a str>,
    envelopes: Vec<&'a str>,
    batches: Vec<Option<&'a str>>,
    tags: Vec<Option<String>>,
}

impl<'a> Columns<'a> {
    fn of(jobs: &'a [NewJob]) -> Self {
        Columns {
            ids: jobs.iter().map(|j| j.id.as_str()).collect(),
            queues: jobs.iter().map(|j| j.queue.as_str()).collect(),
            names: jobs.iter().map(|j| j.job.as_str()).collect(),
            envelopes: jobs.iter().map(|j| j.envelope.as_str()).collect(),
            batches: jobs.iter().map(|j| j.batch_id.as_deref()).collect(),
            tags: jobs.iter().map(NewJob::tags_column).collect(),
        }
    }
}
