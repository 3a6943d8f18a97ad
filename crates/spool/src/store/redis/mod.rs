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
    time::Duration,
};

use futures_util::future::try_join_all;
use redis::{
    AsyncConnectionConfig, Client, Script, ScriptInvocation, Value,
    aio::{ConnectionManager, ConnectionManagerConfig},
};

use super::{StoreError, StoreResult, WakeupSignal};

mod admin;
mod keys;
mod migrate;
mod queue;
mod rows;
mod scripts;
mod url;
mod wakeups;
mod workflow;

pub use keys::DEFAULT_PREFIX;
/// The `redis` crate this store is built on, for code that needs to reach the same server
/// (tests, tools).
pub use redis as driver;

use keys::Keys;
use rows::{array, int};
use url::RedisUrl;

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
}

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
        #[cfg(not(feature = "redis-tls"))]
        if config.driver_url.starts_with("rediss://") {
            return Err(StoreError::NotCompiled("redis-tls"));
        }
        let client = Client::open(config.driver_url.as_str())
            .map_err(|e| StoreError::bad_url(&config.driver_url, e))?;
        // One direct connection first: it fails at once and says why (refused, bad password),
        // where the managed connection would keep retrying; it also checks the server's
        // eviction policy before anything is stored.
        let direct = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let mut probe = client
            .get_multiplexed_async_connection_with_config(&direct)
            .await?;
        migrate::check_eviction(&mut probe, config.allow_eviction).await?;
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
            registered: Mutex::new(HashSet::new()),
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
            .map_err(|e| StoreError::bad_url(&config.driver_url, e))?;
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
    /// in one pipeline of EXISTS.
    async fn first_queue_holding(
        &self,
        queues: Vec<String>,
        suffix: &str,
    ) -> StoreResult<Option<String>> {
        if queues.is_empty() {
            return Ok(None);
        }
        let mut pipe = redis::pipe();
        for queue in &queues {
            pipe.cmd("EXISTS")
                .arg(format!("{}:{suffix}", self.keys.queue(queue)));
        }
        let mut conn = self.conn.clone();
        let found: Vec<i64> = pipe.query_async(&mut conn).await?;
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
