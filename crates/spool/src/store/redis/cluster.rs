//! Redis Cluster routing: a managed connection per primary, and every call sent to the node
//! that serves its key's slot (the first key: a script's `KEYS[1]`, a command's first
//! argument). `MOVED` refreshes the slot map and retries; `ASK` retries once on the named
//! node after `ASKING`; `TRYAGAIN` (a slot half-way through a move) waits a little and
//! retries. `SCRIPT LOAD` goes to every primary.
//!
//! Why not the driver's own cluster client: while one primary was down it also failed calls
//! bound for the healthy ones (its recovery fails every request in flight), so every worker
//! lost its lease and the queues on the healthy nodes starved. Here each node's connection
//! fails alone, and a node that just failed is not dialled again for a short, growing pause,
//! so a worker's other queues keep their speed.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use redis::{
    Client, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, ServerErrorKind, Value,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
};

use super::connection::{CONNECT_TIMEOUT, RESPONSE_TIMEOUT, direct};
use crate::store::{StoreError, StoreResult};

/// Slots in a Redis Cluster.
const SLOTS: u16 = 16384;
/// Redirections and `TRYAGAIN`s followed for one call before its error is returned.
const MAX_REDIRECTS: u32 = 5;
/// The pause before a node that failed is dialled again: doubling up to the maximum.
const FIRST_PAUSE: Duration = Duration::from_millis(250);
const MAX_PAUSE: Duration = Duration::from_secs(5);
/// The slot map is read again at most this often while a node is down (a failover moves its
/// slots to a replica).
const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// A connection to a Redis Cluster (cheap to clone: clones share the connections).
#[derive(Clone)]
pub struct ClusterRouter {
    shared: Arc<Shared>,
}

struct Shared {
    /// Seed node URLs; the first is the template for every node's URL (user, password,
    /// options).
    seeds: Vec<String>,
    template: url::Url,
    /// Slot ranges and the URL of the primary serving each.
    slots: RwLock<Vec<SlotRange>>,
    nodes: Mutex<HashMap<String, ConnectionManager>>,
    /// Nodes that failed: when each may be dialled again, and the pause after the next failure.
    down: Mutex<HashMap<String, (Instant, Duration)>>,
    last_refresh: Mutex<Option<Instant>>,
}

/// Slots `start..=end` are served by `node`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SlotRange {
    pub(super) start: u16,
    pub(super) end: u16,
    pub(super) node: String,
}

impl ClusterRouter {
    /// Reads the slot map from the first seed that answers.
    pub(super) async fn connect(seeds: Vec<String>) -> StoreResult<ClusterRouter> {
        let template = url::Url::parse(&seeds[0]).map_err(|e| StoreError::bad_url(&seeds[0], e))?;
        let router = ClusterRouter {
            shared: Arc::new(Shared {
                seeds,
                template,
                slots: RwLock::new(Vec::new()),
                nodes: Mutex::new(HashMap::new()),
                down: Mutex::new(HashMap::new()),
                last_refresh: Mutex::new(None),
            }),
        };
        router.refresh().await?;
        Ok(router)
    }

    /// The URL of every primary in the slot map.
    pub(super) fn primaries(&self) -> Vec<String> {
        let mut nodes: Vec<String> = read(&self.shared.slots)
            .iter()
            .map(|r| r.node.clone())
            .collect();
        nodes.sort();
        nodes.dedup();
        nodes
    }

    /// Reads the slot map again, from the known primaries and then the seeds, whichever
    /// answers first.
    async fn refresh(&self) -> StoreResult<()> {
        *lock(&self.shared.last_refresh) = Some(Instant::now());
        let mut candidates = self.primaries();
        candidates.extend(self.shared.seeds.iter().cloned());
        let mut last = None;
        for node in candidates {
            let reply = match direct(&node).await {
                Ok(mut conn) => redis::cmd("CLUSTER")
                    .arg("SLOTS")
                    .query_async::<Value>(&mut conn)
                    .await
                    .map_err(StoreError::from),
                Err(e) => Err(e),
            };
            match reply.and_then(|reply| slot_ranges(&self.shared.template, &node, &reply)) {
                Ok(ranges) => {
                    *self.shared.slots.write().unwrap_or_else(|e| e.into_inner()) = ranges;
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last
            .unwrap_or_else(|| StoreError::Unavailable("no Redis Cluster node answered".into())))
    }

    fn node_for(&self, slot: u16) -> Option<String> {
        read(&self.shared.slots)
            .iter()
            .find(|r| (r.start..=r.end).contains(&slot))
            .map(|r| r.node.clone())
    }

    /// The managed connection to `node` (made on first use; it connects lazily).
    fn connection(&self, node: &str) -> RedisResult<ConnectionManager> {
        let mut nodes = lock(&self.shared.nodes);
        if let Some(conn) = nodes.get(node) {
            return Ok(conn.clone());
        }
        // One quick retry: a node that stays unreachable is paused by `down` instead.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let conn = ConnectionManager::new_lazy_with_config(Client::open(node)?, config)?;
        nodes.insert(node.to_string(), conn.clone());
        Ok(conn)
    }

    /// Fails at once if `node` failed moments ago.
    fn check_paused(&self, node: &str) -> RedisResult<()> {
        match lock(&self.shared.down).get(node) {
            Some((until, _)) if Instant::now() < *until => Err(RedisError::from((
                ErrorKind::Io,
                "Redis Cluster node unreachable",
                format!(
                    "{} failed moments ago; calls for its slots wait until it answers again",
                    crate::redact::redact_url(node)
                ),
            ))),
            _ => Ok(()),
        }
    }

    /// Records whether `node` answered; a failure pauses it and, at most once a second,
    /// reads the slot map again in the background (a failover moves its slots).
    fn note(&self, node: &str, answered: bool) {
        let mut down = lock(&self.shared.down);
        if answered {
            down.remove(node);
            return;
        }
        let pause = down
            .get(node)
            .map_or(FIRST_PAUSE, |(_, p)| (*p * 2).min(MAX_PAUSE));
        down.insert(node.to_string(), (Instant::now() + pause, pause));
        drop(down);
        let due = lock(&self.shared.last_refresh).is_none_or(|at| at.elapsed() >= REFRESH_EVERY);
        if due {
            let router = self.clone();
            tokio::spawn(async move {
                if let Err(e) = router.refresh().await {
                    tracing::debug!("cannot read the Redis Cluster slot map: {e}");
                }
            });
        }
    }

    /// Sends `cmd` to `node`, after `ASKING` if it is the target of an `ASK`.
    async fn send(&self, node: &str, cmd: &Cmd, asking: bool) -> RedisResult<Value> {
        self.check_paused(node)?;
        let mut conn = self.connection(node)?;
        let reply = if asking {
            let mut pipe = redis::pipe();
            pipe.cmd("ASKING").ignore().add_command(cmd.clone());
            pipe.query_async::<(Value,)>(&mut conn).await.map(|(v,)| v)
        } else {
            cmd.query_async::<Value>(&mut conn).await
        };
        self.note(node, !matches!(&reply, Err(e) if unreachable(e)));
        reply
    }

    /// Sends `cmd` where its key lives, following redirections.
    async fn call(&self, cmd: &Cmd) -> RedisResult<Value> {
        let slot = match route(cmd) {
            Route::Everywhere => return self.everywhere(cmd).await,
            Route::Anywhere => None,
            Route::Key(key) => Some(slot_of(&key)),
        };
        let mut ask: Option<String> = None;
        let mut attempt = 0;
        loop {
            let (node, asking) = match (ask.take(), slot) {
                (Some(node), _) => (node, true),
                (None, Some(slot)) => match self.node_for(slot) {
                    Some(node) => (node, false),
                    None => {
                        self.refresh().await.map_err(to_redis)?;
                        let node = self.node_for(slot).ok_or_else(|| {
                            RedisError::from((
                                ErrorKind::Server(ServerErrorKind::ClusterDown),
                                "no node serves the slot",
                                slot.to_string(),
                            ))
                        })?;
                        (node, false)
                    }
                },
                (None, None) => (self.any_primary()?, false),
            };
            let reply = self.send(&node, cmd, asking).await;
            attempt += 1;
            let Err(e) = &reply else {
                return reply;
            };
            if attempt > MAX_REDIRECTS {
                return reply;
            }
            match e.kind() {
                ErrorKind::Server(ServerErrorKind::Moved) => {
                    let target = e.redirect_node().map(|(addr, _)| self.url_of(addr));
                    self.refresh().await.map_err(to_redis)?;
                    if let (Some(slot), Some(Some(target))) = (slot, target) {
                        // The map read may lag the redirection: trust the node that answered.
                        if self.node_for(slot).as_ref() != Some(&target) {
                            self.shared
                                .slots
                                .write()
                                .unwrap_or_else(|e| e.into_inner())
                                .insert(
                                    0,
                                    SlotRange {
                                        start: slot,
                                        end: slot,
                                        node: target,
                                    },
                                );
                        }
                    }
                }
                ErrorKind::Server(ServerErrorKind::Ask) => {
                    ask = e.redirect_node().and_then(|(addr, _)| self.url_of(addr));
                    if ask.is_none() {
                        return reply;
                    }
                }
                ErrorKind::Server(ServerErrorKind::TryAgain) => {
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                }
                _ => return reply,
            }
        }
    }

    /// Sends `cmd` (`SCRIPT LOAD`) to every primary; the first reply. A node that is down
    /// gets it when a call there answers `NOSCRIPT`.
    async fn everywhere(&self, cmd: &Cmd) -> RedisResult<Value> {
        let mut first: Option<RedisResult<Value>> = None;
        for node in self.primaries() {
            let reply = self.send(&node, cmd, false).await;
            if first.as_ref().is_none_or(|f| f.is_err()) {
                first = Some(reply);
            }
        }
        first.unwrap_or_else(|| {
            Err(RedisError::from((
                ErrorKind::Server(ServerErrorKind::ClusterDown),
                "no primaries",
            )))
        })
    }

    /// A primary for a command without a key: the first that is not paused.
    fn any_primary(&self) -> RedisResult<String> {
        let primaries = self.primaries();
        primaries
            .iter()
            .find(|node| self.check_paused(node).is_ok())
            .or(primaries.first())
            .cloned()
            .ok_or_else(|| {
                RedisError::from((
                    ErrorKind::Server(ServerErrorKind::ClusterDown),
                    "no primaries",
                ))
            })
    }

    /// `HOST:PORT` from a redirection, as a node URL.
    fn url_of(&self, addr: &str) -> Option<String> {
        let (host, port) = addr.rsplit_once(':')?;
        super::url::at(&self.shared.template, host, port.parse().ok()?)
    }
}

impl std::fmt::Debug for ClusterRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterRouter")
            .field("slots", &read(&self.shared.slots).len())
            .finish_non_exhaustive()
    }
}

impl ConnectionLike for ClusterRouter {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(self.call(cmd))
    }

    /// A pipeline goes whole to the node of its first keyed command: keep each pipeline to
    /// one slot.
    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let slot = pipeline.cmd_iter().find_map(|cmd| match route(cmd) {
                Route::Key(key) => Some(slot_of(&key)),
                _ => None,
            });
            let node = match slot.and_then(|slot| self.node_for(slot)) {
                Some(node) => node,
                None => self.any_primary()?,
            };
            self.check_paused(&node)?;
            let mut conn = self.connection(&node)?;
            let reply = conn.req_packed_commands(pipeline, offset, count).await;
            self.note(&node, !matches!(&reply, Err(e) if unreachable(e)));
            reply
        })
    }

    fn get_db(&self) -> i64 {
        0
    }
}

/// Where a command goes.
enum Route {
    /// The node serving this key.
    Key(Vec<u8>),
    /// Any node (no key).
    Anywhere,
    /// Every primary.
    Everywhere,
}

fn route(cmd: &Cmd) -> Route {
    let args: Vec<&[u8]> = cmd
        .args_iter()
        .filter_map(|arg| match arg {
            redis::Arg::Simple(bytes) => Some(bytes),
            _ => None,
        })
        .collect();
    let name = args
        .first()
        .map(|n| n.to_ascii_uppercase())
        .unwrap_or_default();
    match name.as_slice() {
        b"EVALSHA" | b"EVAL" | b"EVALSHA_RO" | b"EVAL_RO" => {
            let keys = args
                .get(2)
                .and_then(|n| std::str::from_utf8(n).ok())
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(0);
            match args.get(3) {
                Some(key) if keys > 0 => Route::Key(key.to_vec()),
                _ => Route::Anywhere,
            }
        }
        b"SCRIPT" => Route::Everywhere,
        b"CLIENT" | b"INFO" | b"CONFIG" | b"PING" | b"CLUSTER" | b"TIME" => Route::Anywhere,
        _ => match args.get(1) {
            Some(key) => Route::Key(key.to_vec()),
            None => Route::Anywhere,
        },
    }
}

/// The key's slot: CRC16 (XMODEM) of its hash tag (the part between the first `{` and the
/// next `}`, if not empty), else of the whole key, modulo 16384.
pub(super) fn slot_of(key: &[u8]) -> u16 {
    let tag = key
        .iter()
        .position(|b| *b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|b| *b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16::State::<crc16::XMODEM>::calculate(tag) % SLOTS
}

/// The slot ranges in a `CLUSTER SLOTS` reply (`[[start, end, [host, port, id], replicas...],
/// ...]`), each primary as a URL like `template`. An empty host means the node asked.
pub(super) fn slot_ranges(
    template: &url::Url,
    asked: &str,
    reply: &Value,
) -> StoreResult<Vec<SlotRange>> {
    let bad = || StoreError::Other(format!("unexpected CLUSTER SLOTS reply: {reply:?}"));
    let Value::Array(entries) = reply else {
        return Err(bad());
    };
    let asked_host = url::Url::parse(asked)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    let mut ranges = Vec::new();
    for entry in entries {
        let Value::Array(parts) = entry else {
            return Err(bad());
        };
        let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(primary))) =
            (parts.first(), parts.get(1), parts.get(2))
        else {
            return Err(bad());
        };
        let host = match primary.first() {
            Some(Value::BulkString(host)) => String::from_utf8_lossy(host).into_owned(),
            Some(Value::SimpleString(host)) => host.clone(),
            _ => return Err(bad()),
        };
        let host = if host.is_empty() || host == "?" {
            asked_host.clone()
        } else {
            host
        };
        let Some(Value::Int(port)) = primary.get(1) else {
            return Err(bad());
        };
        let port = u16::try_from(*port).map_err(|_| bad())?;
        let node = super::url::at(template, &host, port).ok_or_else(bad)?;
        let (start, end) = (
            u16::try_from(*start).map_err(|_| bad())?,
            u16::try_from(*end).map_err(|_| bad())?,
        );
        ranges.push(SlotRange { start, end, node });
    }
    if ranges.is_empty() {
        return Err(StoreError::Unavailable(
            "the Redis Cluster serves no slots yet: finish creating it (redis-cli --cluster create)"
                .into(),
        ));
    }
    Ok(ranges)
}

/// Whether an error means the node could not be reached (rather than a reply).
fn unreachable(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
}

fn to_redis(e: StoreError) -> RedisError {
    RedisError::from((ErrorKind::Io, "Redis Cluster slot map", e.to_string()))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_the_hash_tag() {
        // Values from the Redis Cluster specification's test vector and `CLUSTER KEYSLOT`.
        assert_eq!(slot_of(b"123456789"), 12739);
        assert_eq!(slot_of(b"{spool}"), slot_of(b"spool"));
        assert_eq!(slot_of(b"{spool}:meta"), 12357);
        assert_eq!(slot_of(b"{spool:a}:ready"), 4277);
        assert_eq!(slot_of(b"{}x"), slot_of(b"{}x"));
        assert_ne!(slot_of(b"{}x"), slot_of(b"x"));
    }

    #[test]
    fn scripts_route_by_their_first_key() {
        let mut eval = redis::cmd("EVALSHA");
        eval.arg("abc").arg(1).arg("{spool:a}").arg("x");
        assert!(matches!(route(&eval), Route::Key(k) if k == b"{spool:a}"));
        let mut load = redis::cmd("SCRIPT");
        load.arg("LOAD").arg("return 1");
        assert!(matches!(route(&load), Route::Everywhere));
        let mut get = redis::cmd("HGET");
        get.arg("{spool}:workers").arg("w");
        assert!(matches!(route(&get), Route::Key(k) if k == b"{spool}:workers"));
    }
}
