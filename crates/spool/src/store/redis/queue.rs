//! The queue part of the contract on Redis: pushing, reserving, settling, reaping and the
//! worker leases.
//!
//! Each settlement goes to the queue holding its job: one settle script call per queue, all
//! pipelined, the first combined with the claim of `settle_and_reserve`.

use crate::store::Claim;
use crate::store::rules::{self, count, duration_ms, offset_ms};
use crate::store::wakeup::Listener;
use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use futures_util::future::try_join_all;
use redis::{ScriptInvocation, Value};

use super::{
    RedisStore, lock,
    rows::{self, array, int, opt_int, queue_names},
    scripts, wakeups,
    workflow::Effects,
};
use crate::store::{
    Heartbeat, MetricsStore, NewJob, PushOutcome, QueueStore, ReapReport, ReservedJob, Settlement,
    Store, StoreError, StoreResult, Wakeups, WorkerInfo,
};

/// Jobs per push script call: a call blocks the server while it runs, so huge batches are
/// split (calls for one queue stay in order).
const PUSH_CHUNK: usize = 1000;
/// Outbox entries a reap delivers per queue and call; the rest follow at the next reap.
const OUTBOX_CHUNK: usize = 1000;

/// Appends a job's push fields in the layout `queue.lua`'s `spec_at` reads: id, job name,
/// envelope, delay, retry window, batch id, unique key, until, lock ttl, tags.
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
    call.arg(job.tags_column().unwrap_or_default());
}

/// Appends follow-ups: their count, then each one's queue and push fields.
pub(super) fn follow_up_args(call: &mut ScriptInvocation<'_>, follow_ups: &[NewJob]) {
    call.arg(follow_ups.len());
    for job in follow_ups {
        call.arg(&job.queue);
        push_args(call, job);
    }
}

impl RedisStore {
    /// Groups settlements by queue (in order of first appearance, input order within a
    /// queue); settlements of jobs found in no queue are left out (not applied).
    async fn route(&self, settlements: &[Settlement]) -> StoreResult<Vec<(String, Vec<usize>)>> {
        let mut queue_of: Vec<Option<String>> = {
            let held = lock(&self.held);
            settlements
                .iter()
                .map(|s| held.get(s.id()).map(|(q, _)| q.clone()))
                .collect()
        };
        let unknown: Vec<usize> = (0..settlements.len())
            .filter(|i| queue_of[*i].is_none())
            .collect();
        if !unknown.is_empty() {
            // Not reserved through this handle: find the queue holding each job.
            let queues = self.all_queues().await?;
            let mut pipe = redis::pipe();
            for queue in &queues {
                let base = self.keys.queue(queue);
                for i in &unknown {
                    pipe.cmd("EXISTS")
                        .arg(format!("{base}:job:{}", settlements[*i].id()));
                }
            }
            let mut conn = self.conn.clone();
            let found: Vec<i64> = pipe.query_async(&mut conn).await?;
            for (n, exists) in found.into_iter().enumerate() {
                let i = unknown[n % unknown.len()];
                if exists != 0 && queue_of[i].is_none() {
                    queue_of[i] = Some(queues[n / unknown.len()].clone());
                }
            }
        }
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, queue) in queue_of.into_iter().enumerate() {
            let Some(queue) = queue else { continue };
            match groups.iter_mut().find(|(q, _)| *q == queue) {
                Some((_, items)) => items.push(i),
                None => groups.push((queue, vec![i])),
            }
        }
        Ok(groups)
    }

    /// Reserves from `queues` in order, starting with `claimed` already taken from the first.
    async fn reserve_rest(
        &self,
        worker: &str,
        queues: &[String],
        limit: usize,
        lease_ms: i64,
        claimed: &mut Vec<ReservedJob>,
    ) -> StoreResult<()> {
        // A queue whose node cannot answer now (down, failing over, its slot moving on a
        // cluster) is skipped so the others keep being served; the error is reported only
        // when no queue answered.
        let mut answered = false;
        let mut failure = None;
        for queue in queues {
            let want = limit.saturating_sub(claimed.len());
            if want == 0 {
                break;
            }
            let mut call = self.on_queue(&scripts::RESERVE, queue);
            call.arg(worker).arg(want).arg(lease_ms).arg(queue);
            let reply = match self.run(&call).await {
                Ok(reply) => reply,
                Err(e) if e.is_unavailable() => {
                    self.unreachable(
                        queue,
                        "cannot reserve from this queue now, serving the others",
                        &e,
                    );
                    failure = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            answered = true;
            let jobs = rows::reserved_jobs(&reply, queue)?;
            self.remember_held(worker, &jobs);
            claimed.extend(jobs);
        }
        match failure {
            Some(e) if !answered => Err(e),
            _ => Ok(()),
        }
    }

    /// Calls the settle script for each queue group, the first queue of `claim` (if any)
    /// combined with its claim; returns the applied flags in input order and the claimed jobs.
    /// Follow-ups for other queues and freed slots are finished after the scripts (see
    /// `workflow/effects.rs`); plain settlements leave nothing to finish and cost no extra call.
    async fn settle_groups(
        &self,
        worker: &str,
        settlements: &[Settlement],
        claim: Option<(&str, usize, i64)>,
    ) -> StoreResult<(Vec<bool>, Vec<ReservedJob>)> {
        let settlements = &rules::storable(settlements)[..];
        let mut groups = self.route(settlements).await?;
        if let Some((queue, _, _)) = claim {
            match groups.iter().position(|(q, _)| q == queue) {
                Some(at) => groups.swap(0, at),
                None => groups.insert(0, (queue.to_string(), Vec::new())),
            }
        }
        let calls: Vec<ScriptInvocation<'_>> = groups
            .iter()
            .enumerate()
            .map(|(n, (queue, items))| {
                let mut call = match claim {
                    Some((_, limit, lease_ms)) if n == 0 => {
                        let mut call = self.on_queue(&scripts::SETTLE_RESERVE, queue);
                        call.arg(worker).arg(limit).arg(lease_ms).arg(queue);
                        call
                    }
                    _ => {
                        let mut call = self.on_queue(&scripts::SETTLE, queue);
                        call.arg(worker);
                        call
                    }
                };
                for i in items {
                    settlement_args(&mut call, &settlements[*i]);
                }
                call
            })
            .collect();
        let replies = self.run_all(&calls).await?;
        let mut applied = vec![false; settlements.len()];
        let mut claimed = Vec::new();
        let mut effects = Effects::default();
        for (n, ((queue, items), reply)) in groups.iter().zip(&replies).enumerate() {
            let (flags, outbox, slots) = if claim.is_some() && n == 0 {
                let [flags, jobs, outbox, slots] = rows::fixed::<4>(reply, "settle and reserve")?;
                claimed = rows::reserved_jobs(jobs, queue)?;
                (flags, outbox, slots)
            } else {
                let [flags, outbox, slots] = rows::fixed::<3>(reply, "settle")?;
                (flags, outbox, slots)
            };
            for (i, ok) in items.iter().zip(rows::flags(flags, items.len())?) {
                applied[*i] = ok;
            }
            effects.add(queue, outbox, slots)?;
        }
        self.forget_held(settlements);
        self.remember_held(worker, &claimed);
        self.finish(effects).await;
        let readied = settlements.iter().zip(&applied).any(|(s, ok)| {
            *ok && matches!(s, Settlement::Release { delay, .. } if delay.is_zero())
        });
        if readied {
            self.wakeup.notify();
        }
        Ok((applied, claimed))
    }
}

/// Appends one settlement in the layout `queue.lua`'s `settle` reads.
fn settlement_args(call: &mut ScriptInvocation<'_>, settlement: &Settlement) {
    match settlement {
        Settlement::Complete {
            id,
            token,
            follow_ups,
            result,
        } => {
            if follow_ups.is_empty() && result.is_none() {
                call.arg("c").arg(id).arg(*token);
            } else {
                call.arg("C")
                    .arg(id)
                    .arg(*token)
                    .arg(if result.is_some() { "1" } else { "0" })
                    .arg(result.as_deref().unwrap_or(""));
                follow_up_args(call, follow_ups);
            }
        }
        Settlement::Release {
            id,
            token,
            delay,
            kind,
            error,
        } => {
            let (refund, deferral, exception) = kind.counter_effects();
            call.arg("r")
                .arg(id)
                .arg(*token)
                .arg(offset_ms(*delay))
                .arg(refund)
                .arg(deferral)
                .arg(exception)
                .arg(if error.is_some() { "1" } else { "0" })
                .arg(error.as_deref().unwrap_or(""));
        }
        Settlement::Fail {
            id,
            token,
            error,
            causes,
            follow_ups,
        } => {
            let causes = serde_json::to_string(causes).unwrap_or_else(|_| "[]".into());
            call.arg("f").arg(id).arg(*token).arg(error).arg(causes);
            follow_up_args(call, follow_ups);
        }
    }
}

/// A queue that held nothing and had no push for this long leaves the queue list (see
/// [`RedisStore::unlist_idle_queues`]); each handle's reaper checks this often.
const UNLIST_IDLE: Duration = Duration::from_secs(3600);
const UNLIST_EVERY: Duration = Duration::from_secs(600);

#[async_trait]
impl QueueStore for RedisStore {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn migrate(&self) -> StoreResult<()> {
        self.migrate_layout().await?;
        // Load every script now, so the first calls don't each pay a NOSCRIPT round trip.
        let mut conn = self.conn.clone();
        for script in scripts::all() {
            script.prepare_invoke().load_async(&mut conn).await?;
        }
        Ok(())
    }

    async fn check_schema(&self) -> StoreResult<()> {
        self.check_layout().await
    }

    async fn reopen(&self) -> StoreResult<Arc<dyn Store>> {
        Ok(Arc::new(Self::open_parsed(self.config.clone()).await?))
    }

    async fn push(&self, jobs: &[NewJob]) -> StoreResult<Vec<PushOutcome>> {
        crate::store::check_jobs(jobs)?;
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
        for (i, job) in jobs.iter().enumerate() {
            match groups.iter_mut().find(|(q, _)| *q == job.queue) {
                Some((_, items)) => items.push(i),
                None => groups.push((&job.queue, vec![i])),
            }
        }
        self.note_queues(groups.iter().map(|(q, _)| *q)).await?;
        // Queues concurrently; the chunks of one queue in order, so they keep push order.
        let per_queue = groups.iter().map(|(queue, items)| async move {
            let mut flags = Vec::with_capacity(items.len());
            for chunk in items.chunks(PUSH_CHUNK) {
                let mut call = self.on_queue(&scripts::PUSH, queue);
                call.arg(*queue).arg("0");
                for i in chunk {
                    push_args(&mut call, &jobs[*i]);
                }
                let reply = self.run(&call).await?;
                let [listed_now, queued] = rows::fixed::<2>(&reply, "push")?;
                if int(listed_now, "listed")? != 0 {
                    self.list_again(queue).await?;
                }
                flags.extend(rows::flags(queued, chunk.len())?);
            }
            Ok::<_, StoreError>(flags)
        });
        let results = try_join_all(per_queue).await?;
        let mut outcomes = vec![PushOutcome::AlreadyQueued; jobs.len()];
        for ((_, items), flags) in groups.iter().zip(results) {
            for (i, queued) in items.iter().zip(flags) {
                if queued {
                    outcomes[*i] = PushOutcome::Queued;
                }
            }
        }
        if outcomes.contains(&PushOutcome::Queued) {
            self.count_enqueued(jobs, &outcomes).await?;
            self.wakeup.notify();
        }
        Ok(outcomes)
    }

    async fn register_worker(&self, worker: &WorkerInfo, lease: Duration) -> StoreResult<()> {
        self.register(worker, lease, None).await.map(|_| ())
    }

    async fn register_worker_within(
        &self,
        worker: &WorkerInfo,
        lease: Duration,
        max: u32,
    ) -> StoreResult<bool> {
        self.register(worker, lease, Some(max)).await
    }

    async fn heartbeat(&self, worker_id: &str, lease: Duration) -> StoreResult<Heartbeat> {
        let lease_ms = offset_ms(lease);
        let mut call = self.on_global(&scripts::HEARTBEAT);
        call.arg(worker_id).arg(lease_ms);
        let reply = self.run(&call).await?;
        let items = array(&reply, "heartbeat")?;
        let (Some(kept), Some(epoch), Some(expires)) = (items.first(), items.get(1), items.get(2))
        else {
            return Err(rows::malformed("heartbeat", &reply));
        };
        let kept = int(kept, "lease kept")? != 0;
        let restart_epoch = int(epoch, "restart epoch")?;
        if kept {
            lock(&self.leases).insert(worker_id.to_string(), lease_ms);
            let expires = int(expires, "lease expiry")?;
            self.extend_leases(worker_id, expires, items).await?;
        }
        Ok(Heartbeat {
            lease_kept: kept,
            restart_epoch,
        })
    }

    async fn deregister_worker(&self, worker_id: &str) -> StoreResult<()> {
        let mut call = self.on_global(&scripts::DEREGISTER_WORKER);
        call.arg(worker_id);
        let reply = self.run(&call).await?;
        let (returned, failure) = self
            .hand_back(worker_id, queue_names(array(&reply, "deregister")?, 1)?)
            .await?;
        lock(&self.leases).remove(worker_id);
        lock(&self.registered).remove(worker_id);
        lock(&self.held).retain(|_, (_, w)| w != worker_id);
        if returned > 0 {
            self.wakeup.notify();
        }
        failure.map_or(Ok(()), Err)
    }

    async fn reserve(&self, claim: Claim<'_>) -> StoreResult<Vec<ReservedJob>> {
        if claim.asks_nothing() {
            return Ok(Vec::new());
        }
        let (worker_id, queues, limit) = (claim.worker_id, claim.queues, claim.limit);
        let lease_ms = self.lease_of(worker_id).await?;
        let mut claimed = Vec::new();
        self.reserve_rest(worker_id, queues, limit, lease_ms, &mut claimed)
            .await?;
        Ok(claimed)
    }

    async fn settle(&self, worker_id: &str, settlements: &[Settlement]) -> StoreResult<Vec<bool>> {
        if settlements.is_empty() {
            return Ok(Vec::new());
        }
        let (applied, _) = self.settle_groups(worker_id, settlements, None).await?;
        Ok(applied)
    }

    async fn settle_and_reserve(
        &self,
        settlements: &[Settlement],
        claim: Claim<'_>,
    ) -> StoreResult<(Vec<bool>, Vec<ReservedJob>)> {
        let (worker_id, queues, limit) = (claim.worker_id, claim.queues, claim.limit);
        let Some(first) = queues.first().filter(|_| limit > 0) else {
            return Ok((self.settle(worker_id, settlements).await?, Vec::new()));
        };
        let lease_ms = self.lease_of(worker_id).await?;
        // Settling every queue's jobs and claiming from the first queue go out together: one
        // round trip in the common case. Later queues are tried only if the first fell short.
        let combined = self
            .settle_groups(worker_id, settlements, Some((first, limit, lease_ms)))
            .await;
        let (applied, mut claimed, rest) = match combined {
            Ok((applied, claimed)) => (applied, claimed, &queues[1..]),
            // The first queue's node may be the one failing: settle alone (settling twice is
            // harmless, each settlement is fenced by its token), then claim queue by queue.
            Err(e) if e.is_unavailable() => {
                let applied = self.settle(worker_id, settlements).await?;
                (applied, Vec::new(), queues)
            }
            Err(e) => return Err(e),
        };
        if let Err(e) = self
            .reserve_rest(worker_id, rest, limit, lease_ms, &mut claimed)
            .await
        {
            if claimed.is_empty() && applied.is_empty() {
                return Err(e);
            }
            tracing::warn!("reserving from a later queue failed after settling: {e}");
        }
        Ok((applied, claimed))
    }

    async fn reap(&self, max_recoveries: u32) -> StoreResult<ReapReport> {
        // Registrations first: a worker reaped here learns at its next heartbeat that its lease
        // is gone. Then each queue returns the jobs whose holder's lease there expired.
        let reply = self.run(&self.on_global(&scripts::REAP_WORKERS)).await?;
        let items = array(&reply, "reap")?;
        let removed = int(
            items
                .first()
                .ok_or_else(|| rows::malformed("reap", &reply))?,
            "workers removed",
        )?;
        let queues = queue_names(items, 1)?;
        let args = [max_recoveries.to_string(), OUTBOX_CHUNK.to_string()];
        let replies = self
            .on_each_reachable_queue(&scripts::REAP, &queues, &args)
            .await?;
        let mut report = ReapReport {
            workers_removed: count(removed),
            ..ReapReport::default()
        };
        let mut effects = Effects::default();
        let mut rescued: Vec<(String, String)> = Vec::new();
        for (queue, reply) in &replies {
            let [recovered, failed, outbox, slots, names] = rows::fixed::<5>(reply, "reaped jobs")?;
            report.recovered += count(int(recovered, "recovered")?);
            report.failed += count(int(failed, "failed")?);
            effects.add(queue, outbox, slots)?;
            for name in array(names, "rescued jobs")? {
                rescued.push((queue.to_string(), rows::text(name, "rescued job")?));
            }
        }
        if !rescued.is_empty() {
            let names = rescued.iter().map(|(q, j)| (q.as_str(), j.as_str()));
            let counts = crate::metrics::rescued(crate::now_ms(), names);
            // The jobs are back on their queues already; a lost count is only a figure.
            if let Err(e) = self.record_metrics(&counts).await {
                tracing::debug!("cannot count the rescued jobs: {e}");
            }
        }
        // Follow-ups left in outboxes (a crash between a settlement and its delivery, or the
        // callbacks of poison pills just failed) reach their queues now.
        self.finish(effects).await;
        let due = lock(&self.last_unlist).is_none_or(|at| at.elapsed() >= UNLIST_EVERY);
        if due {
            *lock(&self.last_unlist) = Some(std::time::Instant::now());
            if let Err(e) = self.unlist_idle_queues(UNLIST_IDLE).await {
                tracing::debug!("cannot take idle queues off the queue list now: {e}");
            }
        }
        if report.recovered > 0 {
            self.wakeup.notify();
        }
        Ok(report)
    }

    async fn next_available_in(&self, queues: &[String]) -> StoreResult<Option<Duration>> {
        let replies = self
            .on_each_reachable_queue(&scripts::NEXT_DUE, queues, &[])
            .await?;
        let mut next: Option<i64> = None;
        for (_, reply) in &replies {
            if let Some(ms) = opt_int(reply, "next due")? {
                next = Some(next.map_or(ms, |n| n.min(ms)));
            }
        }
        Ok(next.map(duration_ms))
    }

    fn wakeups(&self) -> Wakeups {
        Listener::keep_running(&self.listener, || wakeups::start(self));
        self.wakeup.subscribe()
    }

    async fn restart_epoch(&self) -> StoreResult<i64> {
        let epoch: Value = self
            .command("HGET", self.keys.meta(), "restart_epoch")
            .await?;
        Ok(opt_int(&epoch, "restart epoch")?.unwrap_or(0))
    }
}
