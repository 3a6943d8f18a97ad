//! Workflows on Redis: unique locks, follow-ups, batches, limiters, concurrency slots,
//! progress and kept results.
//!
//! Everything a settlement changes atomically lives under the hash tag of the settled job's
//! queue, so one script still does it all on a Redis Cluster:
//!
//! - **Unique locks are per queue** (`{P:Q}:lock:<key>`): two jobs with the same key exclude
//!   each other only if they are pushed to the same queue. An expiring lock carries a
//!   `PEXPIRE`, so Redis drops it when its time is up.
//! - **A batch lives under the tag of the queue its jobs were dispatched to**
//!   (`{P:Q}:batch:<id>`, listed per queue in `{P:Q}:batches`), so a job's settlement counts it
//!   and fires its callbacks in the same script. All jobs of a batch must share one queue (the
//!   batch builder's `on_queue` does that); a batch whose jobs span queues is refused with
//!   [`StoreError::Invalid`]. `{P}:batches` maps batch ids to their queue for lookups; it is
//!   written before the batch (an entry without a batch is ignored).
//! - **Follow-ups for other queues go through an outbox.** A chain link or a batch callback
//!   bound for the settling queue is pushed inside the settle script; one bound for another
//!   queue is written to the settling queue's outbox (`{P:Q}:outbox`) in the same script. The
//!   store then delivers it to its queue (a push that marks the id delivered, so a second
//!   delivery never pushes it again, even after it ran) and clears the outbox entry. A crash
//!   in between leaves the entry for [`QueueStore::reap`](crate::store::QueueStore::reap),
//!   which delivers every queue's leftovers: a follow-up is never lost nor run twice.
//! - **Limiters and slots** each live under a tag of their own (`{P:limit:<key>}`,
//!   `{P:slot:<key>}`) and are checked and recorded in one script, so concurrent callers never
//!   pass the limit. Whether the job asking for a slot is held by its worker is checked on
//!   the job's queue first (another slot on a Cluster), and again after taking the slot (a job
//!   settled meanwhile gives it back at once). Slots are freed right after the settle script
//!   that ends their job (best effort: a separate call); a holder whose job is no longer held
//!   under its token, whose worker's lease expired, or whose `expire_after` passed is found
//!   stale and freed by the next `acquire_slot` on that key.
//! - **Results** are kept under the queue's tag (`{P:Q}:result:<id>`, by completion time in
//!   `{P:Q}:results`) until [`WorkflowStore::prune_results`] deletes them.
//!
//! Batches are in `workflow/batches.rs`, what settlements leave to finish (follow-up delivery,
//! slots to free) in `workflow/effects.rs`, and slot holders in `workflow/slots.rs`.

use crate::store::Held;
use crate::store::rules::{duration_ms, offset_ms};
use std::{collections::HashMap, time::Duration};

use async_trait::async_trait;
use redis::Value;

use super::{
    DELETE_CHUNK, RedisStore, lock,
    rows::{self, array, batch_records, int, text},
    scripts,
};
use crate::store::{
    BatchInfo, BatchPrune, CompletedJob, LimitMode, LimitState, NewBatch, NewJob, Progress,
    PushOutcome, SlotRequest, StoreError, StoreResult, WorkflowStore,
};

mod batches;
mod effects;
mod slots;

pub(super) use effects::Effects;

#[async_trait]
impl WorkflowStore for RedisStore {
    async fn create_batch(
        &self,
        batch: &NewBatch,
        jobs: &[NewJob],
    ) -> StoreResult<Vec<PushOutcome>> {
        crate::store::check_batch(batch, jobs)?;
        let callback_queue = [&batch.then, &batch.catch, &batch.finally]
            .into_iter()
            .flatten()
            .map(|j| j.queue.as_str())
            .next();
        let queue = Self::batch_jobs_queue(&batch.id, jobs, None)?
            .or(callback_queue)
            .unwrap_or("default")
            .to_string();
        let exists = || StoreError::Invalid(format!("a batch with id {} exists already", batch.id));
        if self.batch_queue(&batch.id).await?.is_some() {
            return Err(exists());
        }
        // Indexed first: a batch is always found by id; an entry whose batch was never
        // created (a crash or a refusal) points at nothing and is ignored.
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("HSET")
            .arg(self.keys.batches())
            .arg(&batch.id)
            .arg(&queue)
            .query_async(&mut conn)
            .await?;
        let callback = |job: &Option<NewJob>| {
            job.as_ref().map_or_else(String::new, |j| {
                serde_json::json!([j.id, j.queue, j.job, j.envelope]).to_string()
            })
        };
        let head = [
            "create".to_string(),
            batch.id.clone(),
            batch.name.clone(),
            if batch.allow_failures { "1" } else { "0" }.to_string(),
            callback(&batch.then),
            callback(&batch.catch),
            callback(&batch.finally),
        ];
        self.batch_push(&queue, &head, jobs)
            .await?
            .ok_or_else(exists)
    }

    async fn add_to_batch(&self, batch_id: &str, jobs: &[NewJob]) -> StoreResult<Vec<PushOutcome>> {
        crate::store::check_jobs(jobs)?;
        let missing = || StoreError::Invalid(format!("no batch with id {batch_id}"));
        let queue = self.batch_queue(batch_id).await?.ok_or_else(missing)?;
        Self::batch_jobs_queue(batch_id, jobs, Some(&queue))?;
        let head = ["add".to_string(), batch_id.to_string()];
        self.batch_push(&queue, &head, jobs)
            .await?
            .ok_or_else(missing)
    }

    async fn batch(&self, id: &str) -> StoreResult<Option<BatchInfo>> {
        let Some(queue) = self.batch_queue(id).await? else {
            return Ok(None);
        };
        let mut call = self.on_queue(&scripts::BATCH_INFO, &queue);
        call.arg("ids").arg(id);
        let reply = self.run(&call).await?;
        Ok(batch_records(&reply)?.into_iter().next())
    }

    async fn batches(&self, limit: u32) -> StoreResult<Vec<BatchInfo>> {
        let queues = self.all_queues().await?;
        let args = ["newest".to_string(), limit.to_string()];
        let replies = self
            .on_each_queue(&scripts::BATCH_INFO, &queues, &args)
            .await?;
        let mut found = Vec::new();
        for reply in &replies {
            found.extend(batch_records(reply)?);
        }
        // Newest first, ties by id, as the SQL stores list them (RFC 3339 sorts as time).
        found.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        found.truncate(limit as usize);
        Ok(found)
    }

    async fn cancel_batch(&self, id: &str) -> StoreResult<bool> {
        let Some(queue) = self.batch_queue(id).await? else {
            return Ok(false);
        };
        let mut call = self.on_queue(&scripts::BATCH_CANCEL, &queue);
        call.arg(id);
        Ok(int(&self.run(&call).await?, "cancelled")? != 0)
    }

    async fn prune_batches(&self, prune: BatchPrune) -> StoreResult<u64> {
        let age = |a: Option<Duration>| a.map(|a| offset_ms(a).to_string()).unwrap_or_default();
        let args = [
            age(prune.finished),
            age(prune.unfinished),
            age(prune.cancelled),
            DELETE_CHUNK.to_string(),
        ];
        let mut total = 0;
        for queue in self.all_queues().await? {
            loop {
                let mut call = self.on_queue(&scripts::BATCH_PRUNE, &queue);
                for arg in &args {
                    call.arg(arg);
                }
                let reply = self.run(&call).await?;
                let ids = array(&reply, "pruned batches")?
                    .iter()
                    .map(|id| text(id, "batch id"))
                    .collect::<StoreResult<Vec<_>>>()?;
                if !ids.is_empty() {
                    let _: i64 = self.command("HDEL", self.keys.batches(), &ids).await?;
                }
                total += ids.len() as u64;
                if ids.len() < DELETE_CHUNK {
                    break;
                }
            }
        }
        Ok(total)
    }

    async fn limit(&self, key: &str, window: Duration, mode: LimitMode) -> StoreResult<LimitState> {
        let (mode, limit) = match mode {
            LimitMode::Acquire(limit) => ("acquire", limit),
            LimitMode::Record => ("record", 0),
            LimitMode::Peek => ("peek", 0),
        };
        let reply = self.limit_call(key, window, mode, limit).await?;
        let [hit, count, resets_in] = rows::fixed::<3>(&reply, "limit")?;
        Ok(LimitState {
            hit: int(hit, "hit")? != 0,
            count: u32::try_from(int(count, "hits")?.max(0)).unwrap_or(u32::MAX),
            resets_in: duration_ms(int(resets_in, "resets_in")?),
        })
    }

    async fn prune_limits(&self) -> StoreResult<u64> {
        // Every hit log and counter carries a TTL of its window (`limit.lua`): Redis removes
        // the keys of an idle limiter by itself.
        Ok(0)
    }

    async fn clear_limit(&self, key: &str) -> StoreResult<()> {
        self.limit_call(key, Duration::ZERO, "clear", 0).await?;
        Ok(())
    }

    /// Checks (and notes on the job) that `worker` holds the job, finds stale holders of the
    /// slot, takes the slot in one script on the slot's tag, then checks the job again: one
    /// settled meanwhile gives the slot straight back.
    async fn acquire_slot(&self, worker_id: &str, request: &SlotRequest) -> StoreResult<bool> {
        let Some(queue) = self.queue_of_job(&request.job_id).await? else {
            return Ok(false);
        };
        let slot_key = self.keys.slot(&request.key);
        let mut note = self.on_queue(&scripts::SLOT_NOTE, &queue);
        note.arg(worker_id)
            .arg(&request.job_id)
            .arg(request.token)
            .arg(&request.key);
        let mut conn = self.conn.clone();
        let mut holders = redis::cmd("HGETALL");
        holders.arg(&slot_key);
        let (noted, holders) = futures_util::future::try_join(self.run(&note), async {
            Ok::<HashMap<String, String>, StoreError>(holders.query_async(&mut conn).await?)
        })
        .await?;
        if int(&noted, "job held")? == 0 {
            return Ok(false);
        }
        let stale = self.stale_holders(&request.job_id, holders).await?;
        let mut call = scripts::SLOT_ACQUIRE.key(&slot_key);
        call.arg(&request.job_id)
            .arg(worker_id)
            .arg(request.token)
            .arg(&queue)
            .arg(request.limit)
            .arg(
                request
                    .expire_after
                    .map(|d| offset_ms(d).to_string())
                    .unwrap_or_default(),
            );
        for (holder, token) in &stale {
            call.arg(holder).arg(token);
        }
        if int(&self.run(&call).await?, "slot taken")? == 0 {
            return Ok(false);
        }
        let mut check = self.on_queue(&scripts::SLOT_NOTE, &queue);
        check
            .arg(worker_id)
            .arg(&request.job_id)
            .arg(request.token)
            .arg("");
        if int(&self.run(&check).await?, "job held")? == 0 {
            let token = request.token.to_string();
            self.release_slots(&[(request.key.clone(), request.job_id.clone(), token)])
                .await?;
            return Ok(false);
        }
        Ok(true)
    }

    async fn set_progress(&self, held: Held<'_>, progress: &Progress) -> StoreResult<bool> {
        let (worker_id, id, token) = (held.worker_id, held.id, held.token);
        let Some(queue) = self.queue_of_job(id).await? else {
            return Ok(false);
        };
        let mut call = self.on_queue(&scripts::PROGRESS, &queue);
        call.arg(worker_id)
            .arg(id)
            .arg(token)
            .arg(progress.percent.min(100))
            .arg(if progress.message.is_some() { "1" } else { "0" })
            .arg(progress.message.as_deref().unwrap_or(""));
        Ok(int(&self.run(&call).await?, "progress recorded")? != 0)
    }

    async fn job_result(&self, id: &str) -> StoreResult<Option<CompletedJob>> {
        self.completed_job(id).await
    }

    async fn prune_results(&self, age: Duration) -> StoreResult<u64> {
        let args = [offset_ms(age).to_string(), DELETE_CHUNK.to_string()];
        let mut total = 0;
        for queue in self.all_queues().await? {
            total += self.drain(&scripts::RESULT_PRUNE, &queue, &args).await?;
        }
        Ok(total)
    }

    async fn unique_holder(&self, queue: &str, key: &str) -> StoreResult<Option<String>> {
        // The lock key `queue.lua` writes: `{P:Q}:lock:<key>`, a hash whose `owner` is the job.
        let lock = format!("{}:lock:{key}", self.keys.queue(queue));
        let mut conn = self.conn.clone();
        let owner: Option<String> = redis::cmd("HGET")
            .arg(lock)
            .arg("owner")
            .query_async(&mut conn)
            .await?;
        Ok(owner)
    }
}

impl RedisStore {
    /// The queue holding job `id`: known if reserved through this handle, else looked up.
    async fn queue_of_job(&self, id: &str) -> StoreResult<Option<String>> {
        if let Some((queue, _)) = lock(&self.held).get(id) {
            return Ok(Some(queue.clone()));
        }
        let queues = self.all_queues().await?;
        self.first_queue_holding(queues, &format!("job:{id}")).await
    }

    /// Runs the limiter script on `key`'s keys in `mode` (`clear` empties them).
    async fn limit_call(
        &self,
        key: &str,
        window: Duration,
        mode: &str,
        limit: u32,
    ) -> StoreResult<Value> {
        let [hits, counter] = self.keys.limit(key);
        let mut call = scripts::LIMIT.key(hits);
        call.key(counter)
            .arg(offset_ms(window).max(1))
            .arg(mode)
            .arg(limit);
        self.run(&call).await
    }
}
