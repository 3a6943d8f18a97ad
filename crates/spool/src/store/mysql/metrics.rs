//! The metrics part on MySQL: cells in `spool_metrics`, added to with multi-row
//! `INSERT ... ON DUPLICATE KEY UPDATE` statements.

use async_trait::async_trait;
use sqlx::MySqlConnection;

use super::{
    MysqlStore,
    retry::{Begin, TxError, idempotent, in_transaction},
};
use crate::{
    metrics::{self, MetricsQuery, MetricsRecord, Resolution},
    store::{MetricsStore, StoreResult},
};

/// Cells per statement: 7 placeholders each, well under MySQL's 65,535.
const CELLS_PER_STATEMENT: usize = 1000;

#[async_trait]
impl MetricsStore for MysqlStore {
    async fn record_metrics(&self, records: &[MetricsRecord]) -> StoreResult<()> {
        if records.is_empty() {
            return Ok(());
        }
        in_transaction!(&self.pool, Begin::Write, |conn| {
            Ok::<_, TxError>(add(conn, records).await?)
        })
    }

    async fn metrics(&self, query: &MetricsQuery) -> StoreResult<Vec<MetricsRecord>> {
        let rows: Vec<(i64, String, String, String, i64, i64)> = idempotent!(&self.pool, |conn| {
            sqlx::query_as(include_str!("sql/metrics.sql"))
                .bind(query.resolution.seconds())
                .bind(query.first_period())
                .bind(query.queue.as_deref())
                .bind(query.queue.as_deref())
                .fetch_all(&mut *conn)
                .await
        })?;
        Ok(metrics::from_cells(rows))
    }

    async fn prune_metrics(&self, now_ms: i64) -> StoreResult<u64> {
        let mut pruned = 0;
        for (resolution, before) in Resolution::cutoffs(now_ms) {
            pruned += idempotent!(&self.pool, |conn| {
                sqlx::query(include_str!("sql/prune_metrics.sql"))
                    .bind(resolution)
                    .bind(before)
                    .execute(&mut *conn)
                    .await
            })?
            .rows_affected();
        }
        Ok(pruned)
    }
}

/// Adds `records` to the stored cells inside the caller's transaction, in key order.
pub(super) async fn add(
    conn: &mut MySqlConnection,
    records: &[MetricsRecord],
) -> Result<(), sqlx::Error> {
    let cells: Vec<_> = metrics::cells(records).into_iter().collect();
    for chunk in cells.chunks(CELLS_PER_STATEMENT) {
        let rows = super::values(include_str!("sql/metrics_add.sql"), chunk.len());
        let statement = format!("{} ON DUPLICATE KEY UPDATE n = n + VALUES(n)", rows.0);
        let mut query = sqlx::query(sqlx::AssertSqlSafe(statement));
        for ((res, at, queue, job, series, bucket), n) in chunk {
            query = query
                .bind(res)
                .bind(at)
                .bind(queue)
                .bind(job)
                .bind(*series)
                .bind(bucket)
                .bind(n);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}
