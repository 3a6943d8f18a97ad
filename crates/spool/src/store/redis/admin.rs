//! The operator's part of the contract on Redis: stats, listing and inspecting jobs and
//! failed records, retrying, deleting and pruning them, and the restart signal. Most calls run
//! one script per queue, pipelined, and merge the replies in the order the SQL stores list.

use crate::store::rules::{count, offset_ms};
use std::{collections::HashMap, time::Duration};

use async_trait::async_trait;
use redis::Value;

use super::{
    DELETE_CHUNK, RedisStore,
    rows::{self, WorkerRecord, array, failed_records, int, listed_jobs, opt_int, text},
    scripts,
};
use crate::store::{
    AdminStore, CompletedJob, ExpiredWorker, FailedFilter, FailedJob, JobFilter, JobInfo,
    JobSearch, JobState, Page, QueueStats, RetrySelector, Stats, StoreError, StoreResult,
    WorkerStatus,
};

#[async_trait]
impl AdminStore for RedisStore {
    async fn stats(&self) -> StoreResult<Stats> {
        let reply = self.run(&self.on_global(&scripts::WORKERS)).await?;
        let items = array(&reply, "workers")?;
        let mut records = Vec::new();
        let mut queues = Vec::new();
        let clock = int(items.first().unwrap_or(&Value::Nil), "now")?;
        let unlisted = int(
            items.get(1).unwrap_or(&Value::Nil),
            "processed on unlisted queues",
        )?;
        let mut expired = Vec::new();
        for item in items.iter().skip(2) {
            match item {
                Value::Array(fields) if fields.len() == 2 => {
                    let [id, expiry] = rows::fixed::<2>(item, "expired worker")?;
                    expired.push(ExpiredWorker::new(
                        text(id, "worker id")?,
                        clock - int(expiry, "lease expiry")?,
                    ));
                }
                Value::Array(_) => {
                    let [id, info, expiry] = rows::fixed::<3>(item, "worker")?;
                    let id = text(id, "worker id")?;
                    let info = text(info, "worker info")?;
                    let record: WorkerRecord = serde_json::from_str(&info).map_err(|e| {
                        StoreError::Other(format!("malformed worker record for {id}: {e}"))
                    })?;
                    let expiry = int(expiry, "lease expiry")?;
                    records.push((id, record, expiry));
                }
                other => queues.push(text(other, "queue name")?),
            }
        }
        queues.sort();
        let replies = self.on_each_queue(&scripts::STATS, &queues, &[]).await?;
        let mut stats = Stats {
            expired_workers: expired,
            processed: count(unlisted),
            ..Stats::default()
        };
        let mut busy: HashMap<String, Vec<(usize, i64, String)>> = HashMap::new();
        for (n, (queue, reply)) in queues.iter().zip(&replies).enumerate() {
            let [
                now,
                ready,
                due,
                delayed,
                reserved,
                oldest,
                processed,
                failed,
                held,
            ] = rows::fixed::<9>(reply, "queue stats")?;
            let now = int(now, "now")?;
            let pending = count(int(ready, "ready")? + int(due, "due")?);
            let delayed = count(int(delayed, "delayed")?);
            let reserved = count(int(reserved, "reserved")?);
            stats.processed += count(int(processed, "processed")?);
            stats.failed += count(int(failed, "failed")?);
            for job in array(held, "held jobs")? {
                let [id, worker, seq] = rows::fixed::<3>(job, "held job")?;
                busy.entry(text(worker, "worker")?).or_default().push((
                    n,
                    int(seq, "seq")?,
                    text(id, "job id")?,
                ));
            }
            if pending + delayed + reserved > 0 {
                stats.queues.push(QueueStats {
                    paused: false,
                    name: queue.clone(),
                    pending,
                    delayed,
                    reserved,
                    oldest_ready_age_ms: opt_int(oldest, "oldest")?
                        .map(|at| count(now - at))
                        .unwrap_or(0),
                });
            }
        }
        records
            .sort_by(|(a_id, a, _), (b_id, b, _)| (a.started_at, a_id).cmp(&(b.started_at, b_id)));
        stats.workers = records
            .into_iter()
            .map(|(id, record, expiry)| {
                let mut jobs = busy.remove(&id).unwrap_or_default();
                jobs.sort();
                let (last_seen_ms, lease_ms) =
                    WorkerStatus::seen(expiry, Some(record.lease_ms), clock);
                WorkerStatus {
                    last_seen_ms,
                    lease_ms,
                    busy: jobs.into_iter().map(|(_, _, job)| job).collect(),
                    id,
                    host: record.host,
                    pid: record.pid,
                    queues: record.queues,
                }
            })
            .collect();
        Ok(stats)
    }

    async fn jobs(&self, filter: &JobFilter) -> StoreResult<Vec<JobInfo>> {
        let queues = match &filter.queue {
            Some(queue) => vec![queue.clone()],
            None => self.all_queues().await?,
        };
        let state = match filter.state {
            None => "",
            Some(JobState::Pending) => "pending",
            Some(JobState::Delayed) => "delayed",
            Some(JobState::Reserved) => "reserved",
        };
        let limit = filter.limit.unwrap_or(100) as usize;
        let replies = self
            .on_each_queue(
                &scripts::LIST,
                &queues,
                &[state.to_string(), limit.to_string()],
            )
            .await?;
        let mut found = Vec::new();
        for (queue, reply) in queues.iter().zip(&replies) {
            found.extend(listed_jobs(reply, queue)?);
        }
        found.sort_by_key(|(job, seq)| (job.available_at, *seq));
        found.truncate(limit);
        Ok(found.into_iter().map(|(job, _)| job).collect())
    }

    async fn job(&self, id: &str) -> StoreResult<Option<JobInfo>> {
        let queues = self.all_queues().await?;
        let args = [String::new(), "1".to_string(), id.to_string()];
        let replies = self.on_each_queue(&scripts::LIST, &queues, &args).await?;
        for (queue, reply) in queues.iter().zip(&replies) {
            if let Some((job, _)) = listed_jobs(reply, queue)?.into_iter().next() {
                return Ok(Some(job));
            }
        }
        Ok(None)
    }

    async fn search_jobs(&self, search: &JobSearch) -> StoreResult<Page<JobInfo>> {
        self.search_queued(search).await
    }

    async fn completed_jobs(&self, search: &JobSearch) -> StoreResult<Page<CompletedJob>> {
        self.search_completed(search).await
    }

    async fn prune_completed(&self, age: Duration) -> StoreResult<u64> {
        self.prune_history(age).await
    }

    async fn delete_job(&self, id: &str) -> StoreResult<bool> {
        self.any_queue_did(&scripts::DELETE, &[id.to_string()], "deleted")
            .await
    }

    async fn run_job_now(&self, id: &str) -> StoreResult<bool> {
        let found = self
            .any_queue_did(&scripts::RUN_NOW, &[id.to_string()], "made available")
            .await?;
        if found {
            self.wakeup.notify();
        }
        Ok(found)
    }

    async fn clear(&self, queue: &str) -> StoreResult<u64> {
        self.drain(&scripts::CLEAR, queue, &[DELETE_CHUNK.to_string()])
            .await
    }

    async fn failed_jobs(&self, filter: &FailedFilter) -> StoreResult<(Vec<FailedJob>, u64)> {
        let queues = match &filter.queue {
            Some(queue) => vec![queue.clone()],
            None => self.all_queues().await?,
        };
        let limit = filter.limit.unwrap_or(100) as usize;
        let replies = self
            .on_each_queue(&scripts::FAILED_LIST, &queues, &[limit.to_string()])
            .await?;
        let mut total = 0;
        let mut found = Vec::new();
        for reply in &replies {
            let (n, records) = failed_records(reply)?;
            total += n;
            found.extend(records);
        }
        // Newest first, ties by id, as the SQL stores list them.
        found.sort_by(|(a, a_at), (b, b_at)| b_at.cmp(a_at).then_with(|| a.id.cmp(&b.id)));
        found.truncate(limit);
        Ok((found.into_iter().map(|(job, _)| job).collect(), total))
    }

    async fn failed_job(&self, id: &str) -> StoreResult<Option<FailedJob>> {
        let queues = self.all_queues().await?;
        let args = ["1".to_string(), id.to_string()];
        let replies = self
            .on_each_queue(&scripts::FAILED_LIST, &queues, &args)
            .await?;
        for reply in &replies {
            if let Some((job, _)) = failed_records(reply)?.1.into_iter().next() {
                return Ok(Some(job));
            }
        }
        Ok(None)
    }

    async fn retry_failed(&self, selector: &RetrySelector) -> StoreResult<Vec<String>> {
        let all = || vec!["all".to_string()];
        let (queues, args) = match selector {
            RetrySelector::Ids(ids) if ids.is_empty() => return Ok(Vec::new()),
            RetrySelector::Ids(ids) => {
                let mut args = vec!["ids".to_string()];
                args.extend(ids.iter().cloned());
                (self.all_queues().await?, args)
            }
            RetrySelector::All { queue: Some(queue) } => (vec![queue.clone()], all()),
            RetrySelector::All { queue: None } => (self.all_queues().await?, all()),
            // A batch's failed records live with its jobs, under the batch's queue.
            RetrySelector::Batch(id) => match self.batch_queue(id).await? {
                Some(queue) => (vec![queue], vec!["batch".to_string(), id.clone()]),
                None => return Ok(Vec::new()),
            },
        };
        let replies = self.on_each_queue(&scripts::RETRY, &queues, &args).await?;
        let mut retried = Vec::new();
        for reply in &replies {
            for item in array(reply, "retried")? {
                let [id, failed_at] = rows::fixed::<2>(item, "retried job")?;
                retried.push((int(failed_at, "failed_at")?, text(id, "job id")?));
            }
        }
        // Oldest failure first, ties by id, across queues.
        retried.sort();
        if !retried.is_empty() {
            self.wakeup.notify();
        }
        Ok(retried.into_iter().map(|(_, id)| id).collect())
    }

    async fn forget_failed(&self, id: &str) -> StoreResult<bool> {
        let args = ["ids".to_string(), id.to_string()];
        self.any_queue_did(&scripts::FORGET, &args, "forgotten")
            .await
    }

    async fn flush_failed(&self) -> StoreResult<u64> {
        let mut total = 0;
        for queue in self.all_queues().await? {
            total += self
                .drain(
                    &scripts::FORGET,
                    &queue,
                    &["all".to_string(), DELETE_CHUNK.to_string()],
                )
                .await?;
        }
        Ok(total)
    }

    async fn prune_failed(&self, age: Duration) -> StoreResult<u64> {
        let mut total = 0;
        let args = [
            "older".to_string(),
            DELETE_CHUNK.to_string(),
            offset_ms(age).to_string(),
        ];
        for queue in self.all_queues().await? {
            total += self.drain(&scripts::FORGET, &queue, &args).await?;
        }
        Ok(total)
    }

    async fn signal_restart(&self) -> StoreResult<i64> {
        int(
            &self.run(&self.on_global(&scripts::RESTART)).await?,
            "restart epoch",
        )
    }
}

impl RedisStore {
    /// Runs a per-queue script on every queue with `args`; whether any queue's reply (a count
    /// of `what`) is not zero.
    async fn any_queue_did(
        &self,
        script: &redis::Script,
        args: &[String],
        what: &str,
    ) -> StoreResult<bool> {
        let queues = self.all_queues().await?;
        let replies = self.on_each_queue(script, &queues, args).await?;
        let mut any = false;
        for reply in &replies {
            any |= int(reply, what)? != 0;
        }
        Ok(any)
    }
}
