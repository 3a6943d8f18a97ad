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
//!   in between leaves the entry for [`Store::reap`](crate::Store::reap), which delivers every
//!   queue's leftovers: a follow-up is never lost nor run twice.
//! - **Limiters and slots** each live under a tag of their own (`{P:limit:<key>}`,
//!   `{P:slot:<key>}`) and are checked and recorded in one script, so concurrent callers never
//!   pass the limit. Whether the job asking for a slot is held by its worker is checked on
//!   the job's queue first (another slot on a Cluster), and again after taking the slot (a job
//!   settled meanwhile gives it back at once). Slots are freed right after the settle script
//!   that ends their job (best effort: a separate call); a holder whose job is no longer held
//!   under its token, whose worker's lease expired, or whose `expire_after` passed is found
//!   stale and freed by the next `acquire_slot` on that key.
//! - **Results** are kept under the queue's tag (`{P:Q}:result:<id>`, by completion time in
//!   `{P:Q}:results`) until [`Store::prune_results`](crate::Store::prune_results) deletes them.

use std::{collections::HashMap, time::Duration};

use redis::{ScriptInvocation, Value};
use serde::Deserialize;

use super::{
    DELETE_CHUNK, RedisStore, count,
    decode::{self, array, int, opt_int, opt_text, text},
    keys::Keys,
    lock, offset_ms, scripts,
};
use crate::store::{
    BatchInfo, BatchPrune, CompletedJob, LimitMode, LimitState, NewBatch, NewJob, Progress,
    PushOutcome, SlotRequest, StoreError, StoreResult, rfc3339_ms,
};

/// Outbox entries a reap delivers per queue and call; the rest follow at the next reap.
const OUTBOX_CHUNK: usize = 1000;

/// Appends a job's push fields in the layout `queue.lua`'s `spec_at` reads: id, job name,
/// envelope, delay, retry window, batch id, unique key, until, lock ttl.
pub(super) fn push_args(call: &mut ScriptInvocation<'_>, job: &NewJob) {
    call.arg(&job.id)
        .arg(&job.job)
        .arg(&job.envelope)
        .arg(offset_ms(job.delay))
        .arg(
            job.retry_for
                .map(|d| offset_ms(d).to_string())
                .unwrap_or_default(),
        )
        .arg(job.batch_id.as_deref().unwrap_or(""));
    match &job.unique {
        Some(unique) => call.arg(&unique.key).arg(unique.until.as_str()).arg(
            unique
                .ttl
                .map(|d| offset_ms(d).to_string())
                .unwrap_or_default(),
        ),
        None => call.arg("").arg("").arg(""),
    };
}

/// Appends follow-ups: their count, then each one's queue and push fields.
pub(super) fn follow_up_args(call: &mut ScriptInvocation<'_>, follow_ups: &[NewJob]) {
    call.arg(follow_ups.len());
    for job in follow_ups {
        call.arg(&job.queue);
        push_args(call, job);
    }
}

/// What a settle or reap script left for the store to finish: outbox entries to deliver and
/// slots to free.
#[derive(Debug, Default)]
pub(super) struct Effects {
    /// (source queue, follow-up id, entry JSON).
    outbox: Vec<(String, String, String)>,
    /// (slot key, holder job id, token).
    slots: Vec<(String, String, String)>,
}

impl Effects {
    /// Adds a script's outbox entries (`{id, entry}...`) and slots (`{key, id, token}...`).
    pub(super) fn add(&mut self, queue: &str, outbox: &Value, slots: &Value) -> StoreResult<()> {
        for pair in array(outbox, "outbox entries")?.chunks(2) {
            let [id, entry] = pair else {
                return Err(decode::malformed("outbox entries", outbox));
            };
            self.outbox.push((
                queue.to_string(),
                text(id, "follow-up id")?,
                text(entry, "outbox entry")?,
            ));
        }
        for triple in array(slots, "slots to free")?.chunks(3) {
            let [key, id, token] = triple else {
                return Err(decode::malformed("slots to free", slots));
            };
            self.slots.push((
                text(key, "slot key")?,
                text(id, "slot holder")?,
                int(token, "slot token")?.to_string(),
            ));
        }
        Ok(())
    }

    fn is_empty(&self) -> bool {
        self.outbox.is_empty() && self.slots.is_empty()
    }
}

/// A slot holder's record, as `slot_acquire.lua` writes it.
#[derive(Deserialize)]
struct SlotHolder {
    #[serde(rename = "w")]
    worker: String,
    #[serde(rename = "q")]
    queue: String,
    #[serde(rename = "t")]
    token: String,
}

impl RedisStore {
    /// Finishes what settle or reap scripts left: delivers outbox entries to their queues and
    /// frees slots. Failures are logged, not returned: the settlements already happened, and
    /// the next reap delivers what is left (stale slots are freed lazily).
    pub(super) async fn finish(&self, effects: Effects) {
        if effects.is_empty() {
            return;
        }
        if let Err(e) = self.deliver(&effects.outbox).await {
            tracing::warn!("delivering follow-ups failed (the reaper retries): {e}");
        }
        if let Err(e) = self.release_slots(&effects.slots).await {
            tracing::warn!("freeing concurrency slots failed (they expire): {e}");
        }
    }

    /// Pushes outbox entries to their target queues, marking each id delivered there, then
    /// deletes them from their source outboxes. Idempotent: delivering an entry twice pushes
    /// its job once.
    pub(super) async fn deliver(&self, entries: &[(String, String, String)]) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut targets: Vec<(String, Vec<Vec<String>>)> = Vec::new();
        let mut broken = Vec::new();
        for (source, id, entry) in entries {
            match serde_json::from_str::<Vec<String>>(entry) {
                Ok(mut fields) if fields.len() == 10 => {
                    let queue = fields.remove(0);
                    match targets.iter_mut().find(|(q, _)| *q == queue) {
                        Some((_, jobs)) => jobs.push(fields),
                        None => targets.push((queue, vec![fields])),
                    }
                }
                // Written by a script, so never expected; dropped rather than retried forever.
                _ => {
                    tracing::error!(queue = %source, "dropping a malformed outbox entry for {id}");
                    broken.push(id);
                }
            }
        }
        self.note_queues(targets.iter().map(|(q, _)| q.as_str()))
            .await?;
        let calls: Vec<ScriptInvocation<'_>> = targets
            .iter()
            .map(|(queue, jobs)| {
                let mut call = self.on_queue(&scripts::PUSH, queue);
                call.arg(queue).arg("1");
                for fields in jobs {
                    for field in fields {
                        call.arg(field);
                    }
                }
                call
            })
            .collect();
        self.run_all(&calls).await?;
        let mut pipe = redis::pipe();
        for (source, id, _) in entries {
            pipe.cmd("HDEL")
                .arg(Keys::outbox(&self.keys.queue(source)))
                .arg(id)
                .ignore();
        }
        let mut conn = self.conn.clone();
        let () = pipe.query_async(&mut conn).await?;
        self.wakeup.notify();
        Ok(())
    }

    /// Frees slots taken under the given tokens.
    async fn release_slots(&self, slots: &[(String, String, String)]) -> StoreResult<()> {
        let calls: Vec<ScriptInvocation<'_>> = slots
            .iter()
            .map(|(key, holder, token)| {
                let mut call = scripts::SLOT_RELEASE.key(self.keys.slot(key));
                call.arg(holder).arg(token);
                call
            })
            .collect();
        self.run_all(&calls).await?;
        Ok(())
    }

    /// The queue holding job `id`: known if reserved through this handle, else looked up.
    pub(super) async fn queue_of_job(&self, id: &str) -> StoreResult<Option<String>> {
        if let Some((queue, _)) = lock(&self.held).get(id) {
            return Ok(Some(queue.clone()));
        }
        let queues = self.all_queues().await?;
        if queues.is_empty() {
            return Ok(None);
        }
        let mut pipe = redis::pipe();
        for queue in &queues {
            pipe.cmd("EXISTS")
                .arg(format!("{}:job:{id}", self.keys.queue(queue)));
        }
        let mut conn = self.conn.clone();
        let found: Vec<i64> = pipe.query_async(&mut conn).await?;
        Ok(queues
            .into_iter()
            .zip(found)
            .find(|(_, n)| *n != 0)
            .map(|(q, _)| q))
    }

    /// The queue a batch's record lives under: from the `{P}:batches` index, else found by
    /// looking in every queue (an index write lost to a crash).
    pub(super) async fn batch_queue(&self, id: &str) -> StoreResult<Option<String>> {
        let mut conn = self.conn.clone();
        let indexed: Option<String> = redis::cmd("HGET")
            .arg(self.keys.batches())
            .arg(id)
            .query_async(&mut conn)
            .await?;
        let queues = match indexed {
            Some(queue) => vec![queue],
            None => self.all_queues().await?,
        };
        if queues.is_empty() {
            return Ok(None);
        }
        let mut pipe = redis::pipe();
        for queue in &queues {
            pipe.cmd("EXISTS")
                .arg(format!("{}:batch:{id}", self.keys.queue(queue)));
        }
        let found: Vec<i64> = pipe.query_async(&mut conn).await?;
        Ok(queues
            .into_iter()
            .zip(found)
            .find(|(_, n)| *n != 0)
            .map(|(q, _)| q))
    }

    /// The one queue of a batch's jobs; `Invalid` if they span queues or leave `expected`.
    fn batch_jobs_queue<'a>(
        batch_id: &str,
        jobs: &'a [NewJob],
        expected: Option<&'a str>,
    ) -> StoreResult<Option<&'a str>> {
        let mut queue = expected;
        for job in jobs {
            match queue {
                Some(q) if q != job.queue => {
                    return Err(StoreError::Invalid(format!(
                        "batch {batch_id}: on Redis all jobs of a batch go to one queue (its \
                         record lives with them), but jobs are bound for `{q}` and `{}`; \
                         dispatch the batch on one queue",
                        job.queue
                    )));
                }
                Some(_) => {}
                None => queue = Some(&job.queue),
            }
        }
        Ok(queue)
    }

    /// Runs the batch push script; `Ok(None)` when its precondition failed.
    async fn batch_push(
        &self,
        queue: &str,
        head: &[String],
        jobs: &[NewJob],
    ) -> StoreResult<Option<Vec<PushOutcome>>> {
        self.note_queues([queue]).await?;
        let mut call = self.on_queue(&scripts::BATCH_PUSH, queue);
        call.arg(queue);
        for arg in head {
            call.arg(arg);
        }
        for job in jobs {
            push_args(&mut call, job);
        }
        let reply = self.run(&call).await?;
        let [status, flags] = decode::fixed::<2>(&reply, "batch push")?;
        if int(status, "batch status")? == 0 {
            return Ok(None);
        }
        let outcomes: Vec<PushOutcome> = decode::flags(flags, jobs.len())?
            .into_iter()
            .map(|queued| {
                if queued {
                    PushOutcome::Queued
                } else {
                    PushOutcome::AlreadyQueued
                }
            })
            .collect();
        if outcomes.contains(&PushOutcome::Queued) {
            self.wakeup.notify();
        }
        Ok(Some(outcomes))
    }

    pub(super) async fn create_batch_now(
        &self,
        batch: &NewBatch,
        jobs: &[NewJob],
    ) -> StoreResult<Vec<PushOutcome>> {
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

    pub(super) async fn add_to_batch_now(
        &self,
        batch_id: &str,
        jobs: &[NewJob],
    ) -> StoreResult<Vec<PushOutcome>> {
        let missing = || StoreError::Invalid(format!("no batch with id {batch_id}"));
        let queue = self.batch_queue(batch_id).await?.ok_or_else(missing)?;
        Self::batch_jobs_queue(batch_id, jobs, Some(&queue))?;
        let head = ["add".to_string(), batch_id.to_string()];
        self.batch_push(&queue, &head, jobs)
            .await?
            .ok_or_else(missing)
    }

    pub(super) async fn batch_now(&self, id: &str) -> StoreResult<Option<BatchInfo>> {
        let Some(queue) = self.batch_queue(id).await? else {
            return Ok(None);
        };
        let mut call = self.on_queue(&scripts::BATCH_INFO, &queue);
        call.arg("ids").arg(id);
        let reply = self.run(&call).await?;
        Ok(batch_records(&reply)?.into_iter().next())
    }

    pub(super) async fn batches_now(&self, limit: u32) -> StoreResult<Vec<BatchInfo>> {
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

    pub(super) async fn cancel_batch_now(&self, id: &str) -> StoreResult<bool> {
        let Some(queue) = self.batch_queue(id).await? else {
            return Ok(false);
        };
        let mut call = self.on_queue(&scripts::BATCH_CANCEL, &queue);
        call.arg(id);
        Ok(int(&self.run(&call).await?, "cancelled")? != 0)
    }

    pub(super) async fn prune_batches_now(&self, prune: BatchPrune) -> StoreResult<u64> {
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
                    let mut conn = self.conn.clone();
                    let _: i64 = redis::cmd("HDEL")
                        .arg(self.keys.batches())
                        .arg(&ids)
                        .query_async(&mut conn)
                        .await?;
                }
                total += ids.len() as u64;
                if ids.len() < DELETE_CHUNK {
                    break;
                }
            }
        }
        Ok(total)
    }

    pub(super) async fn limit_now(
        &self,
        key: &str,
        window: Duration,
        mode: LimitMode,
    ) -> StoreResult<LimitState> {
        let (mode, limit) = match mode {
            LimitMode::Acquire(limit) => ("acquire", limit),
            LimitMode::Record => ("record", 0),
            LimitMode::Peek => ("peek", 0),
        };
        let reply = self.limit_call(key, window, mode, limit).await?;
        let [hit, count, resets_in] = decode::fixed::<3>(&reply, "limit")?;
        Ok(LimitState {
            hit: int(hit, "hit")? != 0,
            count: u32::try_from(int(count, "hits")?.max(0)).unwrap_or(u32::MAX),
            resets_in: Duration::from_millis(
                u64::try_from(int(resets_in, "resets_in")?).unwrap_or(0),
            ),
        })
    }

    pub(super) async fn clear_limit_now(&self, key: &str) -> StoreResult<()> {
        self.limit_call(key, Duration::ZERO, "clear", 0).await?;
        Ok(())
    }

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

    /// Checks (and notes on the job) that `worker` holds the job, finds stale holders of the
    /// slot, takes the slot in one script on the slot's tag, then checks the job again: one
    /// settled meanwhile gives the slot straight back.
    pub(super) async fn acquire_slot_now(
        &self,
        worker_id: &str,
        request: &SlotRequest,
    ) -> StoreResult<bool> {
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

    /// Holders of a slot (other than `asking`) that are stale: their job is no longer held
    /// under their token, or their worker's lease expired. Returns (holder, token) pairs.
    async fn stale_holders(
        &self,
        asking: &str,
        holders: HashMap<String, String>,
    ) -> StoreResult<Vec<(String, String)>> {
        let mut records = Vec::new();
        let mut stale = Vec::new();
        for (holder, raw) in holders {
            if holder == asking {
                continue;
            }
            match serde_json::from_str::<SlotHolder>(&raw) {
                Ok(record) => records.push((holder, record)),
                // Unreadable: freed (the script frees a malformed record whatever the token).
                Err(_) => stale.push((holder, String::new())),
            }
        }
        if records.is_empty() {
            return Ok(stale);
        }
        let mut live = scripts::LIVE_WORKERS.key(self.keys.global());
        for (_, record) in &records {
            live.arg(&record.worker);
        }
        let mut pipe = redis::pipe();
        for (holder, record) in &records {
            pipe.cmd("HMGET")
                .arg(format!("{}:job:{holder}", self.keys.queue(&record.queue)))
                .arg("worker")
                .arg("token");
        }
        let mut conn = self.conn.clone();
        let (alive, fences) = futures_util::future::try_join(self.run(&live), async {
            Ok::<Vec<(Option<String>, Option<String>)>, StoreError>(
                pipe.query_async(&mut conn).await?,
            )
        })
        .await?;
        let alive = decode::flags(&alive, records.len())?;
        for (((holder, record), alive), (worker, token)) in
            records.into_iter().zip(alive).zip(fences)
        {
            let held = worker.as_deref() == Some(record.worker.as_str())
                && token.as_deref() == Some(record.token.as_str());
            if !alive || !held {
                stale.push((holder, record.token));
            }
        }
        Ok(stale)
    }

    pub(super) async fn set_progress_now(
        &self,
        worker_id: &str,
        id: &str,
        token: i64,
        progress: &Progress,
    ) -> StoreResult<bool> {
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

    pub(super) async fn job_result_now(&self, id: &str) -> StoreResult<Option<CompletedJob>> {
        let queues = self.all_queues().await?;
        if queues.is_empty() {
            return Ok(None);
        }
        let mut pipe = redis::pipe();
        for queue in &queues {
            pipe.cmd("HMGET")
                .arg(Keys::result(&self.keys.queue(queue), id))
                .arg("queue")
                .arg("job")
                .arg("batch")
                .arg("result")
                .arg("completed_at");
        }
        let mut conn = self.conn.clone();
        let replies: Vec<Value> = pipe.query_async(&mut conn).await?;
        for reply in &replies {
            let [queue, job, batch, result, completed_at] =
                decode::fixed::<5>(reply, "kept result")?;
            let Some(completed_at) = opt_int(completed_at, "completed_at")? else {
                continue;
            };
            let result = opt_text(result, "result")?;
            return Ok(Some(CompletedJob {
                id: id.to_string(),
                queue: text(queue, "queue")?,
                job: text(job, "job name")?,
                batch_id: opt_text(batch, "batch id")?,
                result: result
                    .map(|r| serde_json::from_str(&r).unwrap_or(serde_json::Value::String(r))),
                completed_at: rfc3339_ms(completed_at),
            }));
        }
        Ok(None)
    }

    pub(super) async fn prune_results_now(&self, age: Duration) -> StoreResult<u64> {
        let args = [offset_ms(age).to_string(), DELETE_CHUNK.to_string()];
        let mut total = 0;
        for queue in self.all_queues().await? {
            total += self.drain(&scripts::RESULT_PRUNE, &queue, &args).await?;
        }
        Ok(total)
    }

    /// The outbox chunk a reap delivers per queue.
    pub(super) fn outbox_chunk() -> usize {
        OUTBOX_CHUNK
    }
}

/// The batch records of a `batch_info.lua` reply.
fn batch_records(reply: &Value) -> StoreResult<Vec<BatchInfo>> {
    array(reply, "batches")?
        .iter()
        .map(|record| {
            let [
                id,
                name,
                total,
                pending,
                failed,
                failed_ids,
                allow_failures,
                created_at,
                cancelled_at,
                finished_at,
            ] = decode::fixed::<10>(record, "batch")?;
            let total = count(int(total, "batch total")?);
            let pending = count(int(pending, "batch pending")?);
            let failed_ids = text(failed_ids, "failed ids")?;
            Ok(BatchInfo {
                id: text(id, "batch id")?,
                name: text(name, "batch name")?,
                total,
                pending,
                failed: count(int(failed, "batch failed")?),
                progress: BatchInfo::percent(total, pending),
                allow_failures: int(allow_failures, "allow_failures")? != 0,
                failed_ids: serde_json::from_str(&failed_ids).unwrap_or_default(),
                created_at: rfc3339_ms(int(created_at, "created_at")?),
                cancelled_at: opt_int(cancelled_at, "cancelled_at")?.map(rfc3339_ms),
                finished_at: opt_int(finished_at, "finished_at")?.map(rfc3339_ms),
            })
        })
        .collect()
}
