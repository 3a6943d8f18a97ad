//! The metrics part on Redis: one hash per resolution and period,
//! `{<prefix>}:metrics:<seconds>:<start>`, fields `["<queue>","<job>","<series>",<bucket>]`
//! (JSON, so any name is safe) added to by one script per write. Minute and hour hashes
//! expire by themselves at the end of their retention; the totals hash never does.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::{RedisStore, scripts};
use crate::{
    metrics::{self, MetricsQuery, MetricsRecord, Resolution},
    store::{MetricsStore, NewJob, PushOutcome, StoreResult},
};

impl RedisStore {
    /// Counts the jobs a push queued (one more call after the push's scripts: the queues'
    /// keys and the metrics hashes live in different Cluster slots).
    pub(super) async fn count_enqueued(
        &self,
        jobs: &[NewJob],
        outcomes: &[PushOutcome],
    ) -> StoreResult<()> {
        let pushed = metrics::queued(jobs, outcomes);
        self.record_metrics(&metrics::enqueued(crate::now_ms(), pushed))
            .await
    }
}

#[async_trait]
impl MetricsStore for RedisStore {
    async fn record_metrics(&self, records: &[MetricsRecord]) -> StoreResult<()> {
        let mut hashes: BTreeMap<(i64, i64), Vec<(String, i64)>> = BTreeMap::new();
        for ((res, at, queue, job, series, bucket), n) in metrics::cells(records) {
            let field = serde_json::json!([queue, job, series, bucket]).to_string();
            hashes.entry((res, at)).or_default().push((field, n));
        }
        if hashes.is_empty() {
            return Ok(());
        }
        let mut call = scripts::METRICS_ADD.prepare_invoke();
        for ((res, at), fields) in &hashes {
            let expires = Resolution::from_seconds(*res)
                .and_then(Resolution::retention_ms)
                .map_or(0, |keep| at + res * 1000 + keep);
            call.key(self.keys.metrics(*res, *at))
                .arg(expires)
                .arg(fields.len());
            for (field, n) in fields {
                call.arg(field).arg(n);
            }
        }
        self.run(&call).await?;
        Ok(())
    }

    async fn metrics(&self, query: &MetricsQuery) -> StoreResult<Vec<MetricsRecord>> {
        let resolution = query.resolution;
        let starts: Vec<i64> = match resolution.seconds() * 1000 {
            0 => vec![0],
            len => {
                let now = crate::now_ms();
                let oldest = resolution
                    .retention_ms()
                    .map_or(query.since_ms, |keep| query.since_ms.max(now - keep - len));
                let first = resolution.start_of(oldest);
                (0..)
                    .map(|i| first + i * len)
                    .take_while(|at| *at <= now)
                    .collect()
            }
        };
        let reads = starts.iter().map(|at| {
            let mut read = redis::cmd("HGETALL");
            read.arg(self.keys.metrics(resolution.seconds(), *at));
            read
        });
        let hashes: Vec<Vec<(String, i64)>> = self.each(reads).await?;
        let mut rows = Vec::new();
        for (at, fields) in starts.iter().zip(hashes) {
            for (field, n) in fields {
                let Ok((queue, job, series, bucket)) =
                    serde_json::from_str::<(String, String, String, i64)>(&field)
                else {
                    continue;
                };
                if query.queue.as_ref().is_none_or(|q| *q == queue) {
                    rows.push((*at, queue, job, series, bucket, n));
                }
            }
        }
        Ok(metrics::from_cells(rows))
    }

    async fn prune_metrics(&self, _now_ms: i64) -> StoreResult<u64> {
        // Minute and hour hashes expire by themselves.
        Ok(0)
    }
}
