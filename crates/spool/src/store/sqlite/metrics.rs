//! The metrics part on SQLite: cells in `spool_metrics`, added to on the writer, read on the
//! read-only connection.

use async_trait::async_trait;
use rusqlite::{Connection, params};

use super::SqliteStore;
use crate::{
    metrics::{self, MetricsQuery, MetricsRecord, Resolution},
    store::{MetricsStore, StoreResult},
};

#[async_trait]
impl MetricsStore for SqliteStore {
    async fn record_metrics(&self, records: &[MetricsRecord]) -> StoreResult<()> {
        if records.is_empty() {
            return Ok(());
        }
        let records = records.to_vec();
        self.write(move |conn| add(conn, &records)).await
    }

    async fn metrics(&self, query: &MetricsQuery) -> StoreResult<Vec<MetricsRecord>> {
        let query = query.clone();
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(include_str!("sql/metrics.sql"))?;
            let rows = statement
                .query_map(
                    params![
                        query.resolution.seconds(),
                        query.first_period(),
                        query.queue
                    ],
                    |row| {
                        Ok((
                            row.get(0)?,
                            row.get(1)?,
                            row.get(2)?,
                            row.get(3)?,
                            row.get(4)?,
                            row.get(5)?,
                        ))
                    },
                )?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(metrics::from_cells(rows))
        })
        .await
    }

    async fn prune_metrics(&self, now_ms: i64) -> StoreResult<u64> {
        self.write(move |conn| {
            let mut pruned = 0;
            for (resolution, before) in Resolution::cutoffs(now_ms) {
                pruned += conn
                    .prepare_cached(include_str!("sql/prune_metrics.sql"))?
                    .execute(params![resolution, before])? as u64;
            }
            Ok(pruned)
        })
        .await
    }
}

/// Adds `records` to the stored cells, inside the caller's write transaction.
pub(super) fn add(conn: &Connection, records: &[MetricsRecord]) -> StoreResult<()> {
    let mut statement = conn.prepare_cached(include_str!("sql/metrics_add.sql"))?;
    for ((res, at, queue, job, series, bucket), n) in metrics::cells(records) {
        statement.execute(params![res, at, queue, job, series, bucket, n])?;
    }
    Ok(())
}
