//! Spool's own query parameters on a `redis://` URL, split off before the URL reaches the
//! driver (which parses host, port, database number, user and password itself, decoding
//! percent-escapes).

use super::keys::DEFAULT_PREFIX;
use crate::store::{StoreError, StoreResult, server_url};

/// A `redis://` or `rediss://` URL taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RedisUrl {
    /// The URL without Spool's parameters, for the driver.
    pub(super) driver_url: String,
    /// `prefix=NAME`: the key prefix (default `spool`).
    pub(super) prefix: String,
    /// `allow_eviction=true`: start even if the server may evict keys.
    pub(super) allow_eviction: bool,
    /// `cluster=true`: the seed nodes of a Redis Cluster (the URL's own host first, then each
    /// `node=HOST:PORT`), each as a driver URL with the same user, password and options.
    /// Empty for a single server.
    pub(super) cluster: Vec<String>,
}

impl RedisUrl {
    pub(super) fn parse(url: &str) -> StoreResult<Self> {
        let mut parsed = server_url::parse(url)?;
        let prefix = server_url::take_param(&mut parsed, "prefix");
        let allow_eviction = match server_url::take_param(&mut parsed, "allow_eviction").as_deref()
        {
            None | Some("false" | "0" | "no") => false,
            Some("true" | "1" | "yes") => true,
            Some(_) => {
                return Err(StoreError::bad_url(
                    url,
                    "allow_eviction takes true or false",
                ));
            }
        };
        let cluster = match server_url::take_param(&mut parsed, "cluster").as_deref() {
            None | Some("false" | "0" | "no") => false,
            Some("true" | "1" | "yes") => true,
            Some(_) => return Err(StoreError::bad_url(url, "cluster takes true or false")),
        };
        let nodes = server_url::take_all(&mut parsed, "node");
        let cluster = if cluster {
            seed_nodes(url, &parsed, &nodes)?
        } else if nodes.is_empty() {
            Vec::new()
        } else {
            return Err(StoreError::bad_url(
                url,
                "node= names a seed node of a Redis Cluster: add cluster=true",
            ));
        };
        Ok(RedisUrl {
            driver_url: parsed.into(),
            prefix: prefix.unwrap_or_else(|| DEFAULT_PREFIX.to_string()),
            allow_eviction,
            cluster,
        })
    }
}

/// The URL itself and one copy per `node=HOST:PORT` with that host and port. A cluster has
/// only database 0, so a URL naming another is refused rather than silently ignored.
fn seed_nodes(url: &str, parsed: &url::Url, nodes: &[String]) -> StoreResult<Vec<String>> {
    let db = parsed.path().trim_start_matches('/');
    if !(db.is_empty() || db == "0") {
        return Err(StoreError::bad_url(
            url,
            format!("Redis Cluster has only database 0, not {db}: end the URL in /0 or nothing"),
        ));
    }
    let mut seeds = vec![parsed.to_string()];
    for node in nodes {
        let bad = || {
            StoreError::bad_url(
                url,
                format!("node=`{node}` is not HOST:PORT (e.g. node=10.0.0.2:7001)"),
            )
        };
        let (host, port) = node.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        seeds.push(at(parsed, host, port).ok_or_else(bad)?);
    }
    Ok(seeds)
}

/// `url` with its host and port replaced: the same user, password and options on another
/// node. `None` if `host` is not a host.
pub(super) fn at(url: &url::Url, host: &str, port: u16) -> Option<String> {
    let mut node = url.clone();
    node.set_host(Some(host)).ok()?;
    node.set_port(Some(port)).ok()?;
    Some(node.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spool_parameters_are_split_off() {
        let plain = RedisUrl::parse("redis://127.0.0.1:6379/0").unwrap();
        assert_eq!(plain.driver_url, "redis://127.0.0.1:6379/0");
        assert_eq!(plain.prefix, "spool");
        assert!(!plain.allow_eviction);
        let ours =
            RedisUrl::parse("redis://u:p@h/2?prefix=jobs&protocol=resp3&allow_eviction=true")
                .unwrap();
        assert_eq!(ours.driver_url, "redis://u:p@h/2?protocol=resp3");
        assert_eq!(ours.prefix, "jobs");
        assert!(ours.allow_eviction);
        assert!(RedisUrl::parse("redis://h?allow_eviction=maybe").is_err());
        assert!(plain.cluster.is_empty());
    }

    #[test]
    fn a_cluster_url_lists_its_seed_nodes() {
        let url = RedisUrl::parse(
            "redis://u:p%40ss@10.0.0.1:7001/0?cluster=true&node=10.0.0.2:7002&prefix=jobs&node=h3:7003",
        )
        .unwrap();
        assert_eq!(url.prefix, "jobs");
        assert_eq!(
            url.cluster,
            [
                "redis://u:p%40ss@10.0.0.1:7001/0",
                "redis://u:p%40ss@10.0.0.2:7002/0",
                "redis://u:p%40ss@h3:7003/0",
            ]
        );
        for bad in [
            "redis://h:7001/2?cluster=true",
            "redis://h:7001?cluster=true&node=h2",
            "redis://h:7001?cluster=true&node=h2:port",
            "redis://h:7001?node=h2:7002",
            "redis://h:7001?cluster=maybe",
        ] {
            let e = RedisUrl::parse(bad).unwrap_err().to_string();
            assert!(e.contains("luster") || e.contains("node"), "{bad}: {e}");
        }
    }
}
