//! The metrics part on PostgreSQL: cells in the `metrics` table, added to with one
//! `INSERT ... ON CONFLICT` over arrays per write.

use async_trait::async_trait;

use super::PostgresStore;
use crate::{
    metrics::{self, MetricsQuery, MetricsRecord, Resolution},
    store::{MetricsStore, StoreResult},
};

#[async_trait]
impl MetricsStore for PostgresStore {
    async fn record_metrics(&self, records: &[MetricsRecord]) -> StoreResult<()> {
        let cells = metrics::cells(records);
        if cells.is_empty() {
            return Ok(());
        }
        let mut columns = Columns::default();
        for ((res, at, queue, job, series, bucket), n) in cells {
            columns.res.push(res as i32);
            columns.at.push(at);
            columns.queue.push(queue);
            columns.job.push(job);
            columns.series.push(series);
            columns.bucket.push(bucket);
            columns.n.push(n);
        }
        let mut conn = self.unit(&self.pool).await?;
        self.query(include_str!("sql/metrics_add.sql"))
            .bind(&columns.res)
            .bind(&columns.at)
            .bind(&columns.queue)
            .bind(&columns.job)
            .bind(&columns.series)
            .bind(&columns.bucket)
            .bind(&columns.n)
            .execute(&mut *conn)
            .await?;
        conn.done().await?;
        Ok(())
    }

    async fn metrics(&self, query: &MetricsQuery) -> StoreResult<Vec<MetricsRecord>> {
        let mut conn = self.unit(&self.pool).await?;
        let rows: Vec<(i64, String, String, String, i64, i64)> = self
            .query_as(include_str!("sql/metrics.sql"))
            .bind(query.resolution.seconds() as i32)
            .bind(query.first_period())
            .bind(query.queue.as_deref())
            .fetch_all(&mut *conn)
            .await?;
        conn.done().await?;
        Ok(metrics::from_cells(rows))
    }

    async fn prune_metrics(&self, now_ms: i64) -> StoreResult<u64> {
        let mut pruned = 0;
        let mut conn = self.unit(&self.pool).await?;
        for (resolution, before) in Resolution::cutoffs(now_ms) {
            pruned += self
                .query(include_str!("sql/prune_metrics.sql"))
                .bind(resolution as i32)
                .bind(before)
                .execute(&mut *conn)
                .await?
                .rows_affected();
        }
        conn.done().await?;
        Ok(pruned)
    }
}

/// The cells of one write as the statement's arrays.
#[derive(Default)]
struct Columns {
    res: Vec<i32>,
    at: Vec<i64>,
    queue: Vec<String>,
    job: Vec<String>,
    series: Vec<&'static str>,
    bucket: Vec<i64>,
    n: Vec<i64>,
}
