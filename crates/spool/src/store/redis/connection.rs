//! The connection a store handle sends its commands on: one server through a managed
//! connection that reconnects by itself, or a Redis Cluster through [`ClusterRouter`], which
//! sends each command and script call to the node that serves its first key's slot and
//! follows `MOVED` and `ASK` redirections.
//!
//! Both are multiplexed: concurrent calls share one socket per node, so calls issued together
//! travel as one pipeline without a `redis::pipe()` (which a cluster can only send to one
//! slot).

use std::time::Duration;

use redis::{
    AsyncConnectionConfig, Client, Cmd, Pipeline, RedisFuture, Value,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection},
};

use super::{cluster::ClusterRouter, migrate, url::RedisUrl};
use crate::store::{StoreError, StoreResult};

/// Time to connect, and to wait for a reply, before the store reports itself unavailable.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub(super) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection to one Redis server or to a Redis Cluster.
#[derive(Clone)]
pub enum Connection {
    /// One server (reconnects after a connection error; the failed call reports the store
    /// unavailable and the worker retries with backoff, D-3).
    Single(ConnectionManager),
    /// A Redis Cluster: a connection per primary, each call routed by its key's slot.
    Cluster(ClusterRouter),
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Connection::Single(_) => "Connection::Single",
            Connection::Cluster(_) => "Connection::Cluster",
        })
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(conn) => conn.req_packed_command(cmd),
            Connection::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(conn) => conn.req_packed_commands(cmd, offset, count),
            Connection::Cluster(conn) => conn.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(conn) => conn.get_db(),
            Connection::Cluster(conn) => conn.get_db(),
        }
    }
}

/// An open connection and a client per seed node (wake-up subscriptions are opened on them,
/// trying each in turn).
pub(super) struct Opened {
    pub(super) conn: Connection,
    pub(super) seeds: Vec<Client>,
}

/// Connects to what `config` names, after checking on every primary that its eviction policy
/// spares Spool's keys. A first direct connection fails at once and says why (refused, bad
/// password), where the managed connections would keep retrying.
pub(super) async fn open(config: &RedisUrl) -> StoreResult<Opened> {
    #[cfg(not(feature = "redis-tls"))]
    if config.driver_url.starts_with("rediss://") {
        return Err(StoreError::NotCompiled("redis-tls"));
    }
    let seeds = seed_clients(config)?;
    if config.cluster.is_empty() {
        let mut probe = direct(&config.driver_url).await?;
        refuse_cluster_node(&mut probe, &config.driver_url).await?;
        migrate::check_eviction(&mut probe, config.allow_eviction).await?;
        let managed = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(3)
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_lazy_with_config(seeds[0].clone(), managed)?;
        return Ok(Opened {
            conn: Connection::Single(conn),
            seeds,
        });
    }
    let router = ClusterRouter::connect(config.cluster.clone()).await?;
    // A primary that is down serves none of its queues until it is back, but the others
    // still can: check the ones that answer, and go on if any did.
    let mut answered = false;
    let mut down = None;
    for primary in router.primaries() {
        match direct(&primary).await {
            Ok(mut probe) => {
                migrate::check_eviction(&mut probe, config.allow_eviction).await?;
                answered = true;
            }
            Err(e) if e.is_unavailable() => {
                tracing::warn!(
                    node = crate::redact::redact_url(&primary),
                    "a Redis Cluster primary is unreachable; its queues wait until it is back: {e}"
                );
                down = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    if let (false, Some(e)) = (answered, down) {
        return Err(e);
    }
    Ok(Opened {
        conn: Connection::Cluster(router),
        seeds,
    })
}

fn seed_clients(config: &RedisUrl) -> StoreResult<Vec<Client>> {
    let urls = if config.cluster.is_empty() {
        std::slice::from_ref(&config.driver_url)
    } else {
        &config.cluster[..]
    };
    urls.iter()
        .map(|url| Client::open(url.as_str()).map_err(|e| StoreError::bad_url(url, e)))
        .collect()
}

/// A plain connection to one node, with the store's timeouts.
pub(super) async fn direct(url: &str) -> StoreResult<MultiplexedConnection> {
    let client = Client::open(url).map_err(|e| StoreError::bad_url(url, e))?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    Ok(client
        .get_multiplexed_async_connection_with_config(&config)
        .await?)
}

/// A driver URL for each node that holds keys: the server itself, or every primary of the
/// cluster (from the slot map of the first seed that answers).
pub(super) async fn primaries(config: &RedisUrl) -> StoreResult<Vec<String>> {
    if config.cluster.is_empty() {
        return Ok(vec![config.driver_url.clone()]);
    }
    Ok(ClusterRouter::connect(config.cluster.clone())
        .await?
        .primaries())
}

/// A single-server URL that reaches a Cluster node would fail later with `MOVED` on most
/// keys: say so at once, with the fix.
async fn refuse_cluster_node(conn: &mut MultiplexedConnection, url: &str) -> StoreResult<()> {
    let info: String = redis::cmd("INFO")
        .arg("cluster")
        .query_async(conn)
        .await
        .unwrap_or_default();
    if info.lines().any(|line| line.trim() == "cluster_enabled:1") {
        return Err(StoreError::Misconfigured(format!(
            "{} is a Redis Cluster node: add `cluster=true` to the store URL (and more seed nodes as `&node=HOST:PORT`)",
            crate::redact::redact_url(url)
        )));
    }
    Ok(())
}
