//! Redis locations: a key prefix of its own, written raw through the redis crate.

use std::sync::Arc;

use spool::{
    Store,
    store::redis::{RedisStore, driver},
};
use spool_conformance::{Raw, Value};
use tokio::sync::{OnceCell, RwLock};

use super::{Fresh, Location, is_leftover, unique_name, unreachable, with_param};

/// Held (shared) while a store is opened, and exclusively while a test has the server's
/// eviction policy changed: opening checks the policy, so the other tests wait meanwhile.
pub(crate) static POLICY: RwLock<()> = RwLock::const_new(());

/// The server: `SPOOL_TEST_REDIS_URL`, else the local one. The tests never flush it: they
/// only touch keys under their own prefixes.
pub(crate) fn redis_url() -> String {
    std::env::var("SPOOL_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into())
}

/// A new prefix; `None` when the server is unreachable outside CI.
pub(crate) async fn redis() -> Option<Fresh> {
    let base = redis_url();
    let fresh = prefix_on(base.clone()).await?;
    SWEPT.get_or_init(|| delete_leftover_prefixes(&base)).await;
    Some(fresh)
}

/// The Redis Cluster this test process started (the first call starts it).
pub(crate) async fn cluster() -> Option<&'static super::cluster::Cluster> {
    static CLUSTER: OnceCell<Option<super::cluster::Cluster>> = OnceCell::const_new();
    CLUSTER
        .get_or_init(|| async {
            tokio::task::spawn_blocking(super::cluster::Cluster::start)
                .await
                .expect("start the Redis Cluster")
        })
        .await
        .as_ref()
}

/// A new prefix on this process's own Redis Cluster; `None` when the Redis binaries are
/// missing outside CI. Nothing to sweep: the cluster goes with the process.
pub(crate) async fn redis_cluster() -> Option<Fresh> {
    let cluster = cluster().await?;
    prefix_on(cluster.url.clone()).await
}

/// A new prefix on the server or cluster at `base`.
async fn prefix_on(base: String) -> Option<Fresh> {
    let name = unique_name();
    let opened = {
        let _policy = POLICY.read().await;
        RedisStore::open_with_prefix(&base, &name).await
    };
    match opened {
        Ok(_) => {}
        Err(e) if e.is_unavailable() => return unreachable("redis", &base, &e),
        Err(e) => panic!(
            "cannot open Redis at {base}: {e}; set SPOOL_TEST_REDIS_URL to a server the tests may use"
        ),
    }
    let url = with_param(&base, &format!("prefix={name}"));
    Some(Fresh {
        url,
        backend: "redis",
        location: Location::Prefix { base, name },
    })
}

pub(super) async fn open(url: &str) -> Arc<dyn Store> {
    let _policy = POLICY.read().await;
    Arc::new(RedisStore::open(url).await.expect("open the Redis store"))
}

/// A connection of its own to the server.
pub(crate) async fn connection(
    url: &str,
) -> Result<driver::aio::MultiplexedConnection, driver::RedisError> {
    driver::Client::open(url)?
        .get_multiplexed_async_connection()
        .await
}

static SWEPT: OnceCell<()> = OnceCell::const_new();

/// Deletes the keys of test prefixes earlier runs left behind. Best effort.
async fn delete_leftover_prefixes(url: &str) {
    let Ok(mut conn) = connection(url).await else {
        return eprintln!("cannot delete leftover test keys: no connection");
    };
    let mut prefixes = std::collections::BTreeSet::new();
    let mut cursor: u64 = 0;
    loop {
        let reply: Result<(u64, Vec<String>), _> = driver::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{{{}*", super::PREFIX))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await;
        let Ok((next, keys)) = reply else {
            return eprintln!("cannot list leftover test keys");
        };
        for key in keys {
            // `{spool_test_<secs>_<hex>}:...` or `{spool_test_<secs>_<hex>:queue}:...`
            let name: String = key
                .trim_start_matches('{')
                .chars()
                .take_while(|c| *c != '}' && *c != ':')
                .collect();
            prefixes.insert(name);
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    for prefix in prefixes.into_iter().filter(|p| is_leftover(p)) {
        if let Err(e) = RedisStore::delete_prefix(url, &prefix).await {
            eprintln!("cannot delete leftover test prefix {prefix}: {e}");
        }
    }
}

/// Sends commands, each a name and its arguments, in order (on a cluster, each to its key's
/// node).
async fn commands(base: &str, commands: Vec<Vec<Value>>) -> Result<(), String> {
    let mut conn = RedisStore::connection(base)
        .await
        .map_err(|e| e.to_string())?;
    for args in commands {
        let mut args = args.into_iter();
        let Some(name) = args.next() else {
            return Err("an empty Redis command".into());
        };
        let mut cmd = driver::Cmd::new();
        cmd.arg(arg(name));
        for value in args {
            cmd.arg(arg(value));
        }
        cmd.query_async::<driver::Value>(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn arg(value: Value) -> Vec<u8> {
    match value {
        Value::Null => Vec::new(),
        Value::Int(n) => n.to_string().into_bytes(),
        Value::Text(s) => s.into_bytes(),
        Value::Bytes(b) => b,
    }
}

pub(super) async fn raw(base: &str, prefix: &str, write: Raw) -> Result<(), String> {
    match write {
        Raw::Redis(args) => commands(base, vec![args]).await,
        Raw::SchemaVersion(version) => {
            let meta = format!("{{{prefix}}}:meta");
            let set = ["HSET", &meta, "schema_version"].map(Value::from);
            let mut set = set.to_vec();
            set.push(Value::Int(version));
            commands(base, vec![set]).await
        }
        Raw::Sql { .. } => Err("Redis takes commands, not SQL".into()),
    }
}

pub(super) async fn schema_version(base: &str, prefix: &str) -> i64 {
    let mut conn = RedisStore::connection(base).await.expect("connect");
    let version: Option<i64> = driver::cmd("HGET")
        .arg(format!("{{{prefix}}}:meta"))
        .arg("schema_version")
        .query_async(&mut conn)
        .await
        .expect("read the layout version");
    version.unwrap_or(0)
}

/// The keys as layout version 1 left them: a job hash without the workflow fields (`batch`,
/// `ukey`, `slots`, progress), its envelope, the ready list, the queue set and version 1.
pub(super) async fn write_version_1(base: &str, prefix: &str, job_id: &str) -> Result<(), String> {
    let queue = format!("{{{prefix}:default}}");
    let global = format!("{{{prefix}}}");
    let text = |args: &[&str]| args.iter().map(|a| Value::from(*a)).collect::<Vec<_>>();
    commands(
        base,
        vec![
            text(&[
                "HSET",
                &format!("{queue}:job:{job_id}"),
                "queue",
                "default",
                "job",
                "noop",
                "seq",
                "1",
                "available_at",
                "0",
                "token",
                "0",
                "attempts",
                "0",
                "recoveries",
                "0",
                "deferrals",
                "0",
                "exceptions",
                "0",
                "created_at",
                "0",
            ]),
            text(&["HSET", &format!("{queue}:env"), job_id, "{}"]),
            text(&["RPUSH", &format!("{queue}:ready"), job_id]),
            text(&["SET", &format!("{queue}:seq"), "1"]),
            text(&["SADD", &format!("{global}:queues"), "default"]),
            text(&["HSET", &format!("{global}:meta"), "schema_version", "1"]),
        ],
    )
    .await
}

/// Writes the restart epoch raw and checks the store reads it: the fixture's raw path
/// reaches the store's own keys.
pub(crate) async fn raw_meta_is_seen(fresh: &Fresh) {
    use spool_conformance::Fixture;
    let Location::Prefix { name, .. } = &fresh.location else {
        panic!("not a Redis location");
    };
    let store = Fixture::store(fresh).await;
    let meta = format!("{{{name}}}:meta");
    fresh
        .raw(Raw::redis(["HSET", meta.as_str(), "restart_epoch", "41"]))
        .await
        .expect("raw HSET");
    assert_eq!(store.restart_epoch().await.unwrap(), 41);
}
