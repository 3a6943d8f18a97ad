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
//!
//! The contract's parts are implemented in `queue.rs`, `admin.rs` and `workflow.rs`; the key
//! layout version and the server's eviction policy are checked in `migrate.rs`.

use crate::store::rules::count;
use std::{
    collections::{HashMap, HashSet},
    sync::{Mutex, MutexGuard},
};

use futures_util::future::try_join_all;
use redis::{Client, Script, ScriptInvocation, Value};

use super::{StoreError, StoreResult, WakeupSignal};

mod admin;
mod cluster;
mod connection;
mod control;
mod history;
mod keys;
mod kv;
mod leases;
mod metrics;
mod migrate;
mod queue;
mod rows;
mod scripts;
mod url;
mod wakeups;
mod workflow;

pub use cluster::ClusterRouter;
pub use connection::Connection;
pub use keys::DEFAULT_PREFIX;
/// The `redis` crate this store is built on, for code that needs to reach the same server
/// (tests, tools).
pub use redis as driver;

use keys::Keys;
use rows::{array, int};
use url::RedisUrl;

/// Keys or records deleted per call by the operator's bulk commands.
const DELETE_CHUNK: usize = 1000;

/// The Redis store. Open it with [`crate::connect`] and a `redis://` (or, with the `redis-tls`
/// feature, `rediss://`) URL, or with [`RedisStore::open_with_prefix`].
///
/// URL parameters Spool reads (and removes before the URL reaches the driver):
/// `prefix=NAME` puts every key under `NAME` instead of `spool`; `allow_eviction=true` starts
/// even if the server's `maxmemory-policy` may evict keys; `cluster=true` reaches a Redis
/// Cluster through the URL's node and each `node=HOST:PORT` (seed nodes: the client finds the
/// rest and follows slot moves).
///
/// ```no_run
/// # async fn example() -> Result<(), spool::StoreError> {
/// use spool::store::redis::RedisStore;
/// let store = RedisStore::open("redis://10.0.0.1:7001/0?cluster=true&node=10.0.0.2:7001").await?;
/// # Ok(()) }
/// ```
pub struct RedisStore {
    config: RedisUrl,
    /// A client per seed node, for the wake-up subscription.
    seeds: Vec<Client>,
    conn: Connection,
    keys: Keys,
    channel: String,
    wakeup: WakeupSignal,
    /// Started by the first `wakeups` call; stopped when the store is dropped.
    listener: Mutex<Option<crate::store::wakeup::Listener>>,
    /// The lease of each worker registered (or heartbeating) through this handle, recorded in
    /// a queue when the worker reserves there.
    leases: Mutex<HashMap<String, i64>>,
    /// Job id -> (queue, worker) for every job reserved through this handle and not settled.
    held: Mutex<HashMap<String, (String, String)>>,
    /// Workers registered through this handle: it has seen every job they reserved, so their
    /// heartbeats need to extend the lease only in the queues where they hold jobs (in `held`),
    /// not in every queue ever used.
    registered: Mutex<HashSet<String>>,
    /// Queues this handle knows to be in the queue list.
    known_queues: Mutex<HashSet<String>>,
    /// When this handle's reaper last took idle queues off the queue list.
    last_unlist: Mutex<Option<std::time::Instant>>,
    /// When a warning last said a queue could not be reached (see
    /// [`RedisStore::unreachable`]).
    warned: Mutex<HashMap<String, std::time::Instant>>,
}

/// A queue that cannot be reached is warned about at most this often per handle; the
/// repeats in between are logged at debug.
const WARN_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// The key prefix a `redis://` URL names with its `prefix=NAME` parameter (decoded), if any.
pub fn prefix_in_url(url: &str) -> StoreResult<Option<String>> {
    let mut parsed = super::server_url::parse(url)?;
    Ok(super::server_url::take_param(&mut parsed, "prefix"))
}

/// Locks a mutex, taking over a poisoned one: the maps stay consistent whatever a panicking
/// holder was doing (each update is a single insert or remove).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
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
        let connection::Opened { conn, seeds } = connection::open(&config).await?;
        Ok(RedisStore {
            channel: keys.channel(),
            config,
            seeds,
            conn,
            keys,
            wakeup: WakeupSignal::default(),
            listener: Mutex::new(None),
            leases: Mutex::new(HashMap::new()),
            held: Mutex::new(HashMap::new()),
            registered: Mutex::new(HashSet::new()),
            known_queues: Mutex::new(HashSet::new()),
            last_unlist: Mutex::new(None),
            warned: Mutex::new(HashMap::new()),
        })
    }

    /// A connection of its own to the server or cluster `url` names (Spool's parameters are
    /// read as [`RedisStore::open`] reads them), for code that reaches Spool's keys itself:
    /// tests writing what another program would, tools.
    pub async fn connection(url: &str) -> StoreResult<Connection> {
        Ok(connection::open(&RedisUrl::parse(url)?).await?.conn)
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
        let mut deleted = 0;
        // On a cluster every primary holds a share of the keys: scan each.
        for node in connection::primaries(&config).await? {
            let mut conn = connection::direct(&node).await?;
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
                        // One key per UNLINK: the keys of one cluster node span many slots.
                        let mut pipe = redis::pipe();
                        for key in &found {
                            pipe.cmd("UNLINK").arg(key);
                        }
                        let n: Vec<u64> = pipe.query_async(&mut conn).await?;
                        deleted += n.iter().sum::<u64>();
                    }
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
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

    /// Runs one command on a key with one argument (`HGET key field`, `SADD key members`, ...).
    async fn command<T: redis::FromRedisValue>(
        &self,
        name: &str,
        key: String,
        arg: impl redis::ToRedisArgs + Send + Sync,
    ) -> StoreResult<T> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd(name)
            .arg(key)
            .arg(arg)
            .query_async(&mut conn)
            .await?)
    }

    /// Runs commands concurrently (pipelined on the multiplexed connection, and on a cluster
    /// sent to each key's node); results in input order. Use it rather than `redis::pipe()`,
    /// which a cluster can only send to one slot.
    async fn each<T: redis::FromRedisValue>(
        &self,
        commands: impl IntoIterator<Item = redis::Cmd>,
    ) -> StoreResult<Vec<T>> {
        try_join_all(commands.into_iter().map(|command| async move {
            let mut conn = self.conn.clone();
            Ok::<T, StoreError>(command.query_async(&mut conn).await?)
        }))
        .await
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

    /// Like [`RedisStore::on_each_queue`], for the worker's background steps (reaping, the
    /// next due time): a queue whose node cannot answer now (down, on a cluster) is left out
    /// with a warning, so the others go on; an error only if no queue answered.
    async fn on_each_reachable_queue(
        &self,
        script: &Script,
        queues: &[String],
        args: &[String],
    ) -> StoreResult<Vec<(String, Value)>> {
        let (answered, failure) = self
            .on_each_queue_tolerant(script, queues, args, "this queue cannot be reached now")
            .await?;
        match failure {
            Some(e) if answered.is_empty() => Err(e),
            _ => Ok(answered),
        }
    }

    /// Runs a per-queue script on each of `queues` concurrently; the replies of the queues
    /// that answered, and the error of the last one whose node could not be reached (logged
    /// as `what`). Any other error is returned.
    async fn on_each_queue_tolerant(
        &self,
        script: &Script,
        queues: &[String],
        args: &[String],
        what: &str,
    ) -> StoreResult<(Vec<(String, Value)>, Option<StoreError>)> {
        let replies = futures_util::future::join_all(queues.iter().map(|queue| async move {
            let mut call = self.on_queue(script, queue);
            for arg in args {
                call.arg(arg);
            }
            (queue, self.run(&call).await)
        }))
        .await;
        let mut answered = Vec::new();
        let mut failure = None;
        for (queue, reply) in replies {
            match reply {
                Ok(reply) => answered.push((queue.clone(), reply)),
                Err(e) if e.is_unavailable() => {
                    self.unreachable(queue, what, &e);
                    failure = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Ok((answered, failure))
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

    /// The first of `queues` under whose tag the key `suffix` (e.g. `job:<id>`) exists, asked
    /// with concurrent EXISTS calls (one round trip per node).
    async fn first_queue_holding(
        &self,
        queues: Vec<String>,
        suffix: &str,
    ) -> StoreResult<Option<String>> {
        if queues.is_empty() {
            return Ok(None);
        }
        let found: Vec<i64> = self
            .each(queues.iter().map(|queue| {
                let mut exists = redis::cmd("EXISTS");
                exists.arg(format!("{}:{suffix}", self.keys.queue(queue)));
                exists
            }))
            .await?;
        Ok(queues
            .into_iter()
            .zip(found)
            .find(|(_, n)| *n != 0)
            .map(|(q, _)| q))
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

    /// Logs that `queue` could not be reached for `what`: a warning at most every
    /// [`WARN_EVERY`] per queue (a node down would otherwise repeat it on every poll), debug
    /// in between.
    fn unreachable(&self, queue: &str, what: &str, e: &StoreError) {
        let now = std::time::Instant::now();
        let mut warned = lock(&self.warned);
        let due = warned
            .get(queue)
            .is_none_or(|at| now.duration_since(*at) >= WARN_EVERY);
        if due {
            warned.insert(queue.to_string(), now);
            tracing::warn!(
                queue,
                "{what}: {e} (repeats logged at debug for {WARN_EVERY:?})"
            );
        } else {
            tracing::debug!(queue, "{what}: {e}");
        }
    }

    /// Adds a queue to the queue list after a push found it unlisted (see
    /// [`RedisStore::unlist_idle_queues`]).
    async fn list_again(&self, queue: &str) -> StoreResult<()> {
        let _: i64 = self.command("SADD", self.keys.queues(), queue).await?;
        lock(&self.known_queues).insert(queue.to_string());
        Ok(())
    }

    /// Takes queues that hold nothing and had no push for `idle` off the queue list, so the
    /// list (which `status`, the reaper and a reopened handle's deregistration walk) does not
    /// grow with every queue name ever used; returns how many. The reaper does it with an idle
    /// time of an hour. Their processed counts stay in the total.
    ///
    /// A push races nothing: unlisting is three steps (the queue drops its `:listed` mark if
    /// idle and empty; the list loses it; the queue is asked again), and a push marks the queue
    /// in its own script and, if the mark was gone, lists it again *after* that script. A push
    /// before the last step is seen by it and undone; one after it lists the queue itself.
    pub async fn unlist_idle_queues(&self, idle: std::time::Duration) -> StoreResult<u64> {
        let queues = self.all_queues().await?;
        let idle_ms = crate::store::rules::offset_ms(idle).to_string();
        let mut unlisted = 0;
        for queue in queues {
            let mut check = self.on_queue(&scripts::PRUNE_QUEUE, &queue);
            check.arg(&idle_ms);
            let processed = int(&self.run(&check).await?, "processed")?;
            if processed < 0 {
                continue;
            }
            let processed = processed.to_string();
            let mut remove = self.on_global(&scripts::UNLIST);
            remove.arg(&queue).arg(&processed).arg("remove");
            self.run(&remove).await?;
            lock(&self.known_queues).remove(&queue);
            let mut again = self.on_queue(&scripts::RELIST_CHECK, &queue);
            again.arg(&processed);
            if int(&self.run(&again).await?, "pushed meanwhile")? == 1 {
                let mut add = self.on_global(&scripts::UNLIST);
                add.arg(&queue).arg(&processed).arg("add");
                self.run(&add).await?;
            } else {
                unlisted += 1;
            }
        }
        Ok(unlisted)
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
        let _: i64 = self.command("SADD", self.keys.queues(), &new).await?;
        lock(&self.known_queues).extend(new.into_iter().map(str::to_string));
        Ok(())
    }
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.keys.prefix())
            .finish_non_exhaustive()
    }
}
