//! The Redis store: many worker processes share one Redis server (or Cluster).
//!
//! Every atomic step is one Lua script (see `scripts/`), loaded once and called by SHA, and
//! every script touches the keys of one queue only, all under the queue's hash tag, so the
//! store works on Redis Cluster. Global things (worker registry, leases, the list of queues,
//! the restart epoch) live under a tag of their own and are touched in calls of their own, and
//! so does each limiter and concurrency slot. Workflows (unique locks, batches, follow-ups
//! through a per-queue outbox, slots, progress, results) are described in `workflow.rs`.
//! Times come from the server's clock (`TIME` inside the scripts, D-7).
//!
//! Worker leases are kept twice: in the global registry (what `heartbeat` reports and `stats`
//! lists) and, per queue, as a sorted set of holder -> expiry that the queue's scripts can read
//! atomically with its jobs. A reservation records the holder's lease in its queue; heartbeats
//! extend it in every queue where it is recorded; the reaper returns a queue's jobs whose
//! holder's lease there expired.
//!
//! A settlement names a job id but not its queue, so a store handle remembers the queue of
//! every job it reserved until it is settled; an id it does not know (settled through another
//! handle) is looked up queue by queue.

use crate::store::{AdminStore, QueueStore, WorkflowStore};
use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use async_trait::async_trait;
use futures_util::future::try_join_all;
use redis::{
    AsyncConnectionConfig, Client, Script, ScriptInvocation, Value,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use serde::{Deserialize, Serialize};

use super::{
    BatchInfo, BatchPrune, CompletedJob, FailedFilter, FailedJob, Heartbeat, JobFilter, JobInfo,
    JobState, LimitMode, LimitState, NewBatch, NewJob, Progress, PushOutcome, QueueStats,
    ReapReport, ReservedJob, RetrySelector, Settlement, SlotRequest, Stats, Store, StoreError,
    StoreResult, WakeupSignal, Wakeups, WorkerInfo, WorkerStatus,
};
use crate::duration::millis;

mod decode;
mod keys;
mod policy;
mod scripts;
mod url;
mod wake;
mod workflow;

pub use keys::DEFAULT_PREFIX;
/// The `redis` crate this store is built on, for code that needs to reach the same server
/// (tests, tools).
pub use redis as driver;

use decode::{array, int, opt_int, text};
use keys::Keys;
use url::RedisUrl;
use workflow::Effects;

/// The version of the key layout this build writes (kept in `{<prefix>}:meta`).
///
/// 2 adds the workflow keys (locks, batches, outboxes, results, limiters, slots) and the
/// fields jobs and failed records carry for them; a build that knows only 1 would settle jobs
/// without their batch, lock and follow-up effects, so it refuses a keyspace at 2.
const LAYOUT_VERSION: i64 = 2;
/// Longest delay or retry window a time is offset by (about 100 years): larger ones mean
/// "practically never" and would lose precision as Lua numbers.
const MAX_OFFSET_MS: i64 = 100 * 365 * 24 * 3600 * 1000;
/// Jobs per push script call: a call blocks the server while it runs, so huge batches are
/// split (calls for one queue stay in order).
const PUSH_CHUNK: usize = 1000;
/// Keys or records deleted per call by the operator's bulk commands.
const DELETE_CHUNK: usize = 1000;
/// Time to connect, and to wait for a reply, before the store reports itself unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// The Redis store. Open it with [`crate::connect`] and a `redis://` (or, with the `redis-tls`
/// feature, `rediss://`) URL, or with [`RedisStore::open_with_prefix`].
///
/// URL parameters Spool reads (and removes before the URL reaches the driver):
/// `prefix=NAME` puts every key under `NAME` instead of `spool`; `allow_eviction=true` starts
/// even if the server's `maxmemory-policy` may evict keys.
pub struct RedisStore {
    config: RedisUrl,
    client: Client,
    conn: ConnectionManager,
    keys: Keys,
    channel: String,
    wakeup: WakeupSignal,
    /// Started by the first [`Store::wakeups`] call; stopped when the store is dropped.
    listener: Mutex<Option<wake::Listener>>,
    /// The lease of each worker registered (or heartbeating) through this handle, recorded in
    /// a queue when the worker reserves there.
    leases: Mutex<HashMap<String, i64>>,
    /// Job id -> (queue, worker) for every job reserved through this handle and not settled.
    held: Mutex<HashMap<String, (String, String)>>,
    /// Queues this handle knows to be in the queue list.
    known_queues: Mutex<HashSet<String>>,
}

/// A worker's registration as stored (the scripts add `started_at`).
#[derive(Serialize, Deserialize)]
struct WorkerRecord {
    host: String,
    pid: u32,
    queues: Vec<String>,
    lease_ms: i64,
    #[serde(default)]
    started_at: i64,
}

/// Locks a mutex, taking over a poisoned one: the maps stay consistent whatever a panicking
/// holder was doing (each update is a single insert or remove).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn offset_ms(d: Duration) -> i64 {
    millis(d).min(MAX_OFFSET_MS)
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl RedisStore {
    /// Connects to the server a `redis://` URL names (host, port, database number, user and
    /// password as the `redis` crate reads them), with the prefix and eviction override from
    /// its query parameters. Refuses a server whose `maxmemory-policy` may evict keys.
    pub async fn open(url: &str) -> StoreResult<Self> {
        Self::open_parsed(RedisUrl::parse(url)?).await
    }

    /// Like [`RedisStore::open`], with every key under `prefix` whatever the URL says: ASCII
    /// letters, digits, `_`, `-` and `.`.
    pub async fn open_with_prefix(url: &str, prefix: &str) -> StoreResult<Self> {
        let mut config = RedisUrl::parse(url)?;
        config.prefix = prefix.to_string();
        Self::open_parsed(config).await
    }

    async fn open_parsed(config: RedisUrl) -> StoreResult<Self> {
        let keys = Keys::new(&config.prefix)?;
        #[cfg(not(feature = "redis-tls"))]
        if config.driver_url.starts_with("rediss://") {
            return Err(StoreError::NotCompiled("redis-tls"));
        }
        let client = Client::open(config.driver_url.as_str())
            .map_err(|e| StoreError::BadUrl(format!("{} ({e})", config.driver_url)))?;
        // One direct connection first: it fails at once and says why (refused, bad password),
        // where the managed connection would keep retrying; it also checks the server's
        // eviction policy before anything is stored.
        let direct = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let mut probe = client
            .get_multiplexed_async_connection_with_config(&direct)
            .await?;
        policy::check_eviction(&mut probe, config.allow_eviction).await?;
        drop(probe);
        // Reconnects on its own after a connection error: the failed call reports the store
        // unavailable, and the worker retries with backoff (D-3).
        let managed = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(3)
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), managed)?;
        Ok(RedisStore {
            channel: keys.channel(),
            config,
            client,
            conn,
            keys,
            wakeup: WakeupSignal::default(),
            listener: Mutex::new(None),
            leases: Mutex::new(HashMap::new()),
            held: Mutex::new(HashMap::new()),
            known_queues: Mutex::new(HashSet::new()),
        })
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        self.keys.prefix()
    }

    /// The server's id for the connection this handle currently uses (`CLIENT ID`), to find
    /// it in `CLIENT LIST` or end it with `CLIENT KILL ID`.
    pub async fn client_id(&self) -> StoreResult<i64> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("CLIENT")
            .arg("ID")
            .query_async(&mut conn)
            .await?)
    }

    /// Deletes every key under `prefix` (SCAN and UNLINK, a batch at a time) on the server
    /// `url` names; returns how many. For tests and benchmarks cleaning up their scratch
    /// keyspace: never run it on a prefix workers are using.
    pub async fn delete_prefix(url: &str, prefix: &str) -> StoreResult<u64> {
        let keys = Keys::new(prefix)?;
        let config = RedisUrl::parse(url)?;
        let client = Client::open(config.driver_url.as_str())
            .map_err(|e| StoreError::BadUrl(format!("{} ({e})", config.driver_url)))?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        let mut deleted = 0;
        for pattern in keys.patterns() {
            let mut cursor: u64 = 0;
            loop {
                let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(DELETE_CHUNK)
                    .query_async(&mut conn)
                    .await?;
                if !found.is_empty() {
                    let n: u64 = redis::cmd("UNLINK")
                        .arg(&found)
                        .query_async(&mut conn)
                        .await?;
                    deleted += n;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(deleted)
    }

    /// A call of a per-queue script, with the queue's key base and the wake-up channel.
    fn on_queue<'a>(&self, script: &'a Script, queue: &str) -> ScriptInvocation<'a> {
        let mut call = script.key(self.keys.queue(queue));
        call.arg(&self.channel);
        call
    }

    /// A call of a global script.
    fn on_global<'a>(&self, script: &'a Script) -> ScriptInvocation<'a> {
        script.key(self.keys.global())
    }

    async fn run(&self, call: &ScriptInvocation<'_>) -> StoreResult<Value> {
        let mut conn = self.conn.clone();
        Ok(call.invoke_async(&mut conn).await?)
    }

    /// Runs calls concurrently on the multiplexed connection (pipelined: one round trip);
    /// results in input order.
    async fn run_all(&self, calls: &[ScriptInvocation<'_>]) -> StoreResult<Vec<Value>> {
        try_join_all(calls.iter().map(|call| self.run(call))).await
    }

    /// Every queue that ever had a job.
    async fn all_queues(&self) -> StoreResult<Vec<String>> {
        let mut conn = self.conn.clone();
        let mut queues: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.queues())
            .query_async(&mut conn)
            .await?;
        queues.sort();
        Ok(queues)
    }

    /// Adds queues to the queue list unless this handle already did.
    async fn note_queues<'q>(&self, queues: impl IntoIterator<Item = &'q str>) -> StoreResult<()> {
        let new: Vec<&str> = {
            let known = lock(&self.known_queues);
            queues.into_iter().filter(|q| !known.contains(*q)).collect()
        };
        if new.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("SADD")
            .arg(self.keys.queues())
            .arg(&new)
            .query_async(&mut conn)
            .await?;
        lock(&self.known_queues).extend(new.into_iter().map(str::to_string));
        Ok(())
    }

    /// The lease of `worker` to record in a queue it reserves from: known to this handle if the
    /// worker registered through it, else read from its registration (0 if it has none, so its
    /// jobs are reaped like those of a dead worker).
    async fn lease_of(&self, worker: &str) -> StoreResult<i64> {
        if let Some(lease) = lock(&self.leases).get(worker) {
            return Ok(*lease);
        }
        let mut conn = self.conn.clone();
        let record: Option<String> = redis::cmd("HGET")
            .arg(self.keys.workers())
            .arg(worker)
            .query_async(&mut conn)
            .await?;
        let lease = record
            .and_then(|json| serde_json::from_str::<WorkerRecord>(&json).ok())
            .map(|r| r.lease_ms);
        if let Some(lease) = lease {
            lock(&self.leases).insert(worker.to_string(), lease);
        }
        Ok(lease.unwrap_or(0))
    }

    fn remember_held(&self, worker: &str, jobs: &[ReservedJob]) {
        let mut held = lock(&self.held);
        for job in jobs {
            held.insert(job.id.clone(), (job.queue.clone(), worker.to_string()));
        }
    }

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

    /// Forgets the queue of settled jobs (applied or not: a job refused is no longer this
    /// worker's).
    fn forget_held(&self, settlements: &[Settlement]) {
        let mut held = lock(&self.held);
        for s in settlements {
            held.remove(s.id());
        }
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
        for queue in queues {
            let want = limit.saturating_sub(claimed.len());
            if want == 0 {
                break;
            }
            let mut call = self.on_queue(&scripts::RESERVE, queue);
            call.arg(worker).arg(want).arg(lease_ms);
            let jobs = decode::reserved_jobs(&self.run(&call).await?, queue)?;
            self.remember_held(worker, &jobs);
            claimed.extend(jobs);
        }
        Ok(())
    }

    /// Calls the settle script for each queue group, the first queue of `claim` (if any)
    /// combined with its claim; returns the applied flags in input order and the claimed jobs.
    /// Follow-ups for other queues and freed slots are finished after the scripts (see
    /// `workflow.rs`); plain settlements leave nothing to finish and cost no extra call.
    async fn settle_groups(
        &self,
        worker: &str,
        settlements: &[Settlement],
        claim: Option<(&str, usize, i64)>,
    ) -> StoreResult<(Vec<bool>, Vec<ReservedJob>)> {
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
                        call.arg(worker).arg(limit).arg(lease_ms);
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
                let [flags, jobs, outbox, slots] = decode::fixed::<4>(reply, "settle and reserve")?;
                claimed = decode::reserved_jobs(jobs, queue)?;
                (flags, outbox, slots)
            } else {
                let [flags, outbox, slots] = decode::fixed::<3>(reply, "settle")?;
                (flags, outbox, slots)
            };
            for (i, ok) in items.iter().zip(decode::flags(flags, items.len())?) {
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

    /// Runs a per-queue script on each of `queues` with the same arguments.
    async fn on_each_queue(
        &self,
        script: &Script,
        queues: &[String],
        args: &[String],
    ) -> StoreResult<Vec<Value>> {
        let calls: Vec<ScriptInvocation<'_>> = queues
            .iter()
            .map(|queue| {
                let mut call = self.on_queue(script, queue);
                for arg in args {
                    call.arg(arg);
                }
                call
            })
            .collect();
        self.run_all(&calls).await
    }

    /// Repeats a chunked delete on one queue until a call deletes less than a whole chunk.
    async fn drain(&self, script: &Script, queue: &str, args: &[String]) -> StoreResult<u64> {
        let mut total = 0;
        loop {
            let mut call = self.on_queue(script, queue);
            for arg in args {
                call.arg(arg);
            }
            let reply = self.run(&call).await?;
            let n = match &reply {
                Value::Array(_) => {
                    let parts = array(&reply, "deleted counts")?;
                    let mut whole = false;
                    let mut sum = 0;
                    for part in parts {
                        let n = int(part, "deleted count")?;
                        whole |= n >= DELETE_CHUNK as i64;
                        sum += n;
                    }
                    total += count(sum);
                    if whole { DELETE_CHUNK as i64 } else { 0 }
                }
                other => {
                    let n = int(other, "deleted count")?;
                    total += count(n);
                    n
                }
            };
            if n < DELETE_CHUNK as i64 {
                return Ok(total);
            }
        }
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
                workflow::follow_up_args(call, follow_ups);
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
            workflow::follow_up_args(call, follow_ups);
        }
    }
}

/// The queue names after the first `skip` items of a global script's reply.
fn queue_names(items: &[Value], skip: usize) -> StoreResult<Vec<String>> {
    items
        .iter()
        .skip(skip)
        .map(|q| text(q, "queue name"))
        .collect()
}

#[async_trait]
impl QueueStore for RedisStore {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn migrate(&self) -> StoreResult<()> {
        let mut call = self.on_global(&scripts::MIGRATE);
        call.arg(LAYOUT_VERSION);
        let found = int(&self.run(&call).await?, "layout version")?;
        if found > LAYOUT_VERSION {
            return Err(StoreError::SchemaTooNew {
                found,
                supported: LAYOUT_VERSION,
            });
        }
        // Load every script now, so the first calls don't each pay a NOSCRIPT round trip.
        let mut conn = self.conn.clone();
        for script in scripts::all() {
            script.prepare_invoke().load_async(&mut conn).await?;
        }
        Ok(())
    }

    async fn reopen(&self) -> StoreResult<Arc<dyn Store>> {
        Ok(Arc::new(Self::open_parsed(self.config.clone()).await?))
    }

    async fn push(&self, jobs: &[NewJob]) -> StoreResult<Vec<PushOutcome>> {
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
                    workflow::push_args(&mut call, &jobs[*i]);
                }
                flags.extend(decode::flags(&self.run(&call).await?, chunk.len())?);
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
            self.wakeup.notify();
        }
        Ok(outcomes)
    }

    async fn register_worker(&self, worker: &WorkerInfo, lease: Duration) -> StoreResult<()> {
        let lease_ms = offset_ms(lease);
        let record = WorkerRecord {
            host: worker.host.clone(),
            pid: worker.pid,
            queues: worker.queues.clone(),
            lease_ms,
            started_at: 0,
        };
        // `started_at` is stamped by the script with the server's clock.
        let mut info = serde_json::to_value(&record)
            .map_err(|e| StoreError::Other(format!("cannot encode a worker: {e}")))?;
        if let Some(object) = info.as_object_mut() {
            object.remove("started_at");
        }
        let mut call = self.on_global(&scripts::REGISTER);
        call.arg(&worker.id).arg(info.to_string()).arg(lease_ms);
        self.run(&call).await?;
        lock(&self.leases).insert(worker.id.clone(), lease_ms);
        Ok(())
    }

    async fn heartbeat(&self, worker_id: &str, lease: Duration) -> StoreResult<Heartbeat> {
        let lease_ms = offset_ms(lease);
        let mut call = self.on_global(&scripts::HEARTBEAT);
        call.arg(worker_id).arg(lease_ms);
        let reply = self.run(&call).await?;
        let items = array(&reply, "heartbeat")?;
        let (Some(kept), Some(epoch), Some(expires)) = (items.first(), items.get(1), items.get(2))
        else {
            return Err(decode::malformed("heartbeat", &reply));
        };
        let kept = int(kept, "lease kept")? != 0;
        let restart_epoch = int(epoch, "restart epoch")?;
        if kept {
            lock(&self.leases).insert(worker_id.to_string(), lease_ms);
            // Extend the lease in every queue that recorded it (XX: only there), in one
            // pipelined round trip; GT never shortens one.
            let expires = int(expires, "lease expiry")?;
            let queues = queue_names(items, 3)?;
            if !queues.is_empty() {
                let mut pipe = redis::pipe();
                for queue in &queues {
                    pipe.cmd("ZADD")
                        .arg(Keys::queue_leases(&self.keys.queue(queue)))
                        .arg("XX")
                        .arg("GT")
                        .arg(expires)
                        .arg(worker_id)
                        .ignore();
                }
                let mut conn = self.conn.clone();
                let () = pipe.query_async(&mut conn).await?;
            }
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
        let queues = queue_names(array(&reply, "deregister")?, 1)?;
        let replies = self
            .on_each_queue(&scripts::DEREGISTER, &queues, &[worker_id.to_string()])
            .await?;
        let mut returned = 0;
        for reply in &replies {
            returned += int(reply, "jobs handed back")?;
        }
        lock(&self.leases).remove(worker_id);
        lock(&self.held).retain(|_, (_, w)| w != worker_id);
        if returned > 0 {
            self.wakeup.notify();
        }
        Ok(())
    }

    async fn reserve(
        &self,
        worker_id: &str,
        queues: &[String],
        limit: usize,
    ) -> StoreResult<Vec<ReservedJob>> {
        if limit == 0 || queues.is_empty() {
            return Ok(Vec::new());
        }
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
        worker_id: &str,
        settlements: &[Settlement],
        queues: &[String],
        limit: usize,
    ) -> StoreResult<(Vec<bool>, Vec<ReservedJob>)> {
        let Some(first) = queues.first().filter(|_| limit > 0) else {
            return Ok((self.settle(worker_id, settlements).await?, Vec::new()));
        };
        let lease_ms = self.lease_of(worker_id).await?;
        // Settling every queue's jobs and claiming from the first queue go out together: one
        // round trip in the common case. Later queues are tried only if the first fell short.
        let (applied, mut claimed) = self
            .settle_groups(worker_id, settlements, Some((first, limit, lease_ms)))
            .await?;
        if let Err(e) = self
            .reserve_rest(worker_id, &queues[1..], limit, lease_ms, &mut claimed)
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
                .ok_or_else(|| decode::malformed("reap", &reply))?,
            "workers removed",
        )?;
        let queues = queue_names(items, 1)?;
        let args = [max_recoveries.to_string(), Self::outbox_chunk().to_string()];
        let replies = self.on_each_queue(&scripts::REAP, &queues, &args).await?;
        let mut report = ReapReport {
            workers_removed: count(removed),
            ..ReapReport::default()
        };
        let mut effects = Effects::default();
        for (queue, reply) in queues.iter().zip(&replies) {
            let [recovered, failed, outbox, slots] = decode::fixed::<4>(reply, "reaped jobs")?;
            report.recovered += count(int(recovered, "recovered")?);
            report.failed += count(int(failed, "failed")?);
            effects.add(queue, outbox, slots)?;
        }
        // Follow-ups left in outboxes (a crash between a settlement and its delivery, or the
        // callbacks of poison pills just failed) reach their queues now.
        self.finish(effects).await;
        if report.recovered > 0 {
            self.wakeup.notify();
        }
        Ok(report)
    }

    async fn next_available_in(&self, queues: &[String]) -> StoreResult<Option<Duration>> {
        let replies = self.on_each_queue(&scripts::NEXT_DUE, queues, &[]).await?;
        let mut next: Option<i64> = None;
        for reply in &replies {
            if let Some(ms) = opt_int(reply, "next due")? {
                next = Some(next.map_or(ms, |n| n.min(ms)));
            }
        }
        Ok(next.map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0))))
    }

    fn wakeups(&self) -> Wakeups {
        let mut listener = lock(&self.listener);
        if !listener.as_ref().is_some_and(wake::Listener::is_running) {
            *listener = wake::Listener::start(
                self.client.clone(),
                self.channel.clone(),
                self.wakeup.clone(),
            );
        }
        self.wakeup.subscribe()
    }

    async fn restart_epoch(&self) -> StoreResult<i64> {
        let mut conn = self.conn.clone();
        let epoch: Value = redis::cmd("HGET")
            .arg(self.keys.meta())
            .arg("restart_epoch")
            .query_async(&mut conn)
            .await?;
        Ok(opt_int(&epoch, "restart epoch")?.unwrap_or(0))
    }
}

#[async_trait]
impl AdminStore for RedisStore {
    async fn stats(&self) -> StoreResult<Stats> {
        let reply = self.run(&self.on_global(&scripts::WORKERS)).await?;
        let items = array(&reply, "workers")?;
        let mut records = Vec::new();
        let mut queues = Vec::new();
        for item in items.iter().skip(1) {
            match item {
                Value::Array(_) => {
                    let [id, info] = decode::fixed::<2>(item, "worker")?;
                    let id = text(id, "worker id")?;
                    let info = text(info, "worker info")?;
                    let record: WorkerRecord = serde_json::from_str(&info).map_err(|e| {
                        StoreError::Other(format!("malformed worker record for {id}: {e}"))
                    })?;
                    records.push((id, record));
                }
                other => queues.push(text(other, "queue name")?),
            }
        }
        queues.sort();
        let replies = self.on_each_queue(&scripts::STATS, &queues, &[]).await?;
        let mut stats = Stats::default();
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
            ] = decode::fixed::<9>(reply, "queue stats")?;
            let now = int(now, "now")?;
            let pending = count(int(ready, "ready")? + int(due, "due")?);
            let delayed = count(int(delayed, "delayed")?);
            let reserved = count(int(reserved, "reserved")?);
            stats.processed += count(int(processed, "processed")?);
            stats.failed += count(int(failed, "failed")?);
            for job in array(held, "held jobs")? {
                let [id, worker, seq] = decode::fixed::<3>(job, "held job")?;
                busy.entry(text(worker, "worker")?).or_default().push((
                    n,
                    int(seq, "seq")?,
                    text(id, "job id")?,
                ));
            }
            if pending + delayed + reserved > 0 {
                stats.queues.push(QueueStats {
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
        records.sort_by(|(a_id, a), (b_id, b)| (a.started_at, a_id).cmp(&(b.started_at, b_id)));
        stats.workers = records
            .into_iter()
            .map(|(id, record)| {
                let mut jobs = busy.remove(&id).unwrap_or_default();
                jobs.sort();
                WorkerStatus {
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

    async fn delete_job(&self, id: &str) -> StoreResult<bool> {
        let queues = self.all_queues().await?;
        let replies = self
            .on_each_queue(&scripts::DELETE, &queues, &[id.to_string()])
            .await?;
        let mut deleted = false;
        for reply in &replies {
            deleted |= int(reply, "deleted")? != 0;
        }
        Ok(deleted)
    }

    async fn run_job_now(&self, id: &str) -> StoreResult<bool> {
        let queues = self.all_queues().await?;
        let replies = self
            .on_each_queue(&scripts::RUN_NOW, &queues, &[id.to_string()])
            .await?;
        let mut found = false;
        for reply in &replies {
            found |= int(reply, "made available")? != 0;
        }
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
                let [id, failed_at] = decode::fixed::<2>(item, "retried job")?;
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
        let queues = self.all_queues().await?;
        let args = ["ids".to_string(), id.to_string()];
        let replies = self.on_each_queue(&scripts::FORGET, &queues, &args).await?;
        let mut forgotten = false;
        for reply in &replies {
            forgotten |= int(reply, "forgotten")? != 0;
        }
        Ok(forgotten)
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

#[async_trait]
impl WorkflowStore for RedisStore {
    async fn create_batch(
        &self,
        batch: &NewBatch,
        jobs: &[NewJob],
    ) -> StoreResult<Vec<PushOutcome>> {
        self.create_batch_now(batch, jobs).await
    }

    async fn add_to_batch(&self, batch_id: &str, jobs: &[NewJob]) -> StoreResult<Vec<PushOutcome>> {
        self.add_to_batch_now(batch_id, jobs).await
    }

    async fn batch(&self, id: &str) -> StoreResult<Option<BatchInfo>> {
        self.batch_now(id).await
    }

    async fn batches(&self, limit: u32) -> StoreResult<Vec<BatchInfo>> {
        self.batches_now(limit).await
    }

    async fn cancel_batch(&self, id: &str) -> StoreResult<bool> {
        self.cancel_batch_now(id).await
    }

    async fn prune_batches(&self, prune: BatchPrune) -> StoreResult<u64> {
        self.prune_batches_now(prune).await
    }

    async fn limit(&self, key: &str, window: Duration, mode: LimitMode) -> StoreResult<LimitState> {
        self.limit_now(key, window, mode).await
    }

    async fn clear_limit(&self, key: &str) -> StoreResult<()> {
        self.clear_limit_now(key).await
    }

    async fn acquire_slot(&self, worker_id: &str, request: &SlotRequest) -> StoreResult<bool> {
        self.acquire_slot_now(worker_id, request).await
    }

    async fn set_progress(
        &self,
        worker_id: &str,
        id: &str,
        token: i64,
        progress: &Progress,
    ) -> StoreResult<bool> {
        self.set_progress_now(worker_id, id, token, progress).await
    }

    async fn job_result(&self, id: &str) -> StoreResult<Option<CompletedJob>> {
        self.job_result_now(id).await
    }

    async fn prune_results(&self, age: Duration) -> StoreResult<u64> {
        self.prune_results_now(age).await
    }
}

/// The jobs of a list script reply, each with its `seq`.
fn listed_jobs(reply: &Value, queue: &str) -> StoreResult<Vec<(JobInfo, i64)>> {
    let items = array(reply, "job list")?;
    let Some((now, jobs)) = items.split_first() else {
        return Err(decode::malformed("job list", reply));
    };
    let now = int(now, "now")?;
    jobs.iter()
        .map(|job| decode::job_info(job, queue, now))
        .collect()
}

/// The total and the records of a failed-list script reply.
fn failed_records(reply: &Value) -> StoreResult<(u64, Vec<(FailedJob, i64)>)> {
    let items = array(reply, "failed list")?;
    let Some((total, records)) = items.split_first() else {
        return Err(decode::malformed("failed list", reply));
    };
    let records = records
        .iter()
        .map(decode::failed_job)
        .collect::<StoreResult<Vec<_>>>()?;
    Ok((count(int(total, "failed total")?), records))
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.keys.prefix())
            .finish_non_exhaustive()
    }
}
