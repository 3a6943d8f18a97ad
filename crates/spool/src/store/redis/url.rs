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
        Ok(RedisUrl {
            driver_url: parsed.into(),
            prefix: prefix.unwrap_or_else(|| DEFAULT_PREFIX.to_string()),
            allow_eviction,
        })
    }
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
    }
}
