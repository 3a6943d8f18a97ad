//! Server store URLs (`postgres://`, `mysql://`, `redis://`) taken apart with the `url`
//! crate: user and password are percent-decoded by the drivers, and Spool's own query
//! parameters are removed (decoded) before the URL reaches them.

use url::Url;

use super::{StoreError, StoreResult};

/// Parses a server store URL. A raw `/` in the user or password cannot be read back (it
/// ends the host), so it is refused with how to write it; a raw `@` is read as part of the
/// password, as the URL standard says.
pub(crate) fn parse(url: &str) -> StoreResult<Url> {
    if let Some((_, rest)) = url.split_once("://") {
        let before_query = rest.split(['?', '#']).next().unwrap_or(rest);
        if before_query
            .rsplit_once('@')
            .is_some_and(|(userinfo, _)| userinfo.contains('/'))
        {
            return Err(StoreError::bad_url(
                url,
                "the user name or password holds a `/`: percent-encode it as %2F \
                 (and `@` as %40, `:` as %3A, `?` as %3F, `#` as %23, `%` as %25)",
            ));
        }
    }
    Url::parse(url).map_err(|e| StoreError::bad_url(url, e))
}

/// Removes every `name=...` query parameter from `url`; returns the last one's decoded value.
pub(crate) fn take_param(url: &mut Url, name: &str) -> Option<String> {
    take_all(url, name).pop()
}

/// Removes every `name=...` query parameter from `url`; returns their decoded values in order.
pub(crate) fn take_all(url: &mut Url, name: &str) -> Vec<String> {
    let mut found = Vec::new();
    let rest: Vec<(String, String)> = url
        .query_pairs()
        .filter_map(|(key, value)| {
            if key == name {
                found.push(value.into_owned());
                None
            } else {
                Some((key.into_owned(), value.into_owned()))
            }
        })
        .collect();
    if !found.is_empty() {
        if rest.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(rest);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_kept_whole_and_raw_slashes_refused() {
        let url = parse("postgres://app:p@ss%2Fw@db:5432/app?x=1").unwrap();
        assert_eq!(url.host_str(), Some("db"));
        assert_eq!(url.password(), Some("p%40ss%2Fw"));
        let e = parse("postgres://app:p/ss@db/app").unwrap_err().to_string();
        assert!(e.contains("%2F") && !e.contains("p/ss"), "{e}");
    }

    #[test]
    fn parameters_are_taken_out_decoded() {
        let mut url = parse("redis://h/0?prefix=a%2Db&protocol=resp3").unwrap();
        assert_eq!(take_param(&mut url, "prefix").as_deref(), Some("a-b"));
        assert_eq!(url.as_str(), "redis://h/0?protocol=resp3");
        assert_eq!(take_param(&mut url, "protocol").as_deref(), Some("resp3"));
        assert_eq!(url.as_str(), "redis://h/0");
        assert_eq!(take_param(&mut url, "absent"), None);
    }
}
