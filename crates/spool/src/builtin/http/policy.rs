//! Where `http` jobs may go: the hosts a worker allows, and the link-local and cloud metadata
//! addresses refused unless named (a job must not read the machine's instance credentials).

use std::{
    error::Error as StdError,
    fmt,
    net::{IpAddr, Ipv6Addr, SocketAddr},
    sync::Arc,
};

use reqwest::{
    Url,
    dns::{Addrs, Name, Resolve, Resolving},
};

/// Host names of cloud metadata services (GCP, AWS, Azure, Alibaba, OpenStack).
const METADATA_HOSTS: &[&str] = &[
    "metadata",
    "metadata.google.internal",
    "metadata.goog",
    "instance-data",
    "instance-data.ec2.internal",
    "metadata.azure.com",
    "metadata.tencentyun.com",
];

/// Which hosts `http` jobs may reach, registered as app state with
/// [`Registry::with_state`](crate::Registry::with_state) (`spool work --allow-host HOST` does
/// this).
///
/// Without a policy, or with an empty one, any host may be reached except link-local
/// addresses (169.254.0.0/16, fe80::/10) and cloud metadata hosts. With hosts named, only
/// those may be reached; a link-local or metadata host is reachable only when named.
/// Names match exactly, without case (no wildcards); give IPv6 addresses without brackets.
///
/// ```
/// use spool::{Registry, builtin::HttpPolicy};
///
/// let registry = Registry::with_builtins()
///     .with_state(HttpPolicy::allow_hosts(["api.example.com", "hooks.example.com"]));
/// assert_eq!(registry.state::<HttpPolicy>().unwrap().hosts().len(), 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpPolicy {
    hosts: Vec<String>,
}

impl HttpPolicy {
    /// A policy that allows only `hosts`.
    pub fn allow_hosts(hosts: impl IntoIterator<Item = impl Into<String>>) -> Self {
        HttpPolicy {
            hosts: hosts.into_iter().map(|h| normalize(&h.into())).collect(),
        }
    }

    /// The allowed hosts, lower-case; empty means any host but link-local and metadata ones.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    fn names(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| *h == normalize(host))
    }

    /// Why a request to `url` is refused, if it is.
    pub(crate) fn refusal(&self, url: &Url) -> Option<String> {
        let Some(host) = url.host_str() else {
            return Some("the URL has no host".into());
        };
        if self.names(host) {
            return None;
        }
        if !self.hosts.is_empty() {
            return Some(format!(
                "host `{host}` is not one the worker allows (--allow-host {})",
                self.hosts.join(", ")
            ));
        }
        let host = normalize(host);
        let link_local = host.parse::<IpAddr>().is_ok_and(is_link_local);
        if link_local || METADATA_HOSTS.contains(&host.as_str()) {
            return Some(format!(
                "host `{host}` is a link-local or cloud metadata address; name it with \
                 --allow-host to reach it"
            ));
        }
        None
    }

    /// A resolver that drops link-local addresses that a host name resolves to, unless the
    /// name is allowed, so a DNS name cannot lead a job to the metadata service either.
    pub(crate) fn resolver(&self) -> Arc<GuardedResolver> {
        Arc::new(GuardedResolver {
            policy: self.clone(),
        })
    }
}

fn normalize(host: &str) -> String {
    host.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// 169.254.0.0/16, fe80::/10, their IPv4-mapped forms, and AWS's IPv6 metadata address.
pub(crate) fn is_link_local(ip: IpAddr) -> bool {
    const AWS_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => {
            v6.is_unicast_link_local()
                || v6 == AWS_METADATA_V6
                || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_link_local())
        }
    }
}

/// Resolves with the system resolver, then drops link-local answers for names not allowed.
pub(crate) struct GuardedResolver {
    policy: HttpPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        let allowed = self.policy.names(&host);
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| allowed || !is_link_local(a.ip()))
                .collect();
            if kept.is_empty() && !found.is_empty() {
                return Err(Box::new(LinkLocalRefused(host)) as Box<dyn StdError + Send + Sync>);
            }
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

/// A host name resolved only to link-local addresses.
#[derive(Debug)]
pub(crate) struct LinkLocalRefused(pub(crate) String);

impl fmt::Display for LinkLocalRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "host `{}` resolves only to link-local (cloud metadata) addresses; name it with \
             --allow-host to reach it",
            self.0
        )
    }
}

impl StdError for LinkLocalRefused {}

/// `url` as messages and logs show it: no user name or password, no query string.
pub(crate) fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = Url::parse(url) else {
        // Not a URL reqwest can use: show nothing of it that could be a credential.
        let end = url.find(['?', '#']).unwrap_or(url.len());
        let head = &url[..end];
        return match head.split_once("://") {
            Some((scheme, rest)) if rest.split('/').next().is_some_and(|a| a.contains('@')) => {
                let host_and_path = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
                format!("{scheme}://***@{host_and_path}")
            }
            _ => head.to_string(),
        } + if end < url.len() { "?***" } else { "" };
    };
    let had_userinfo = !parsed.username().is_empty() || parsed.password().is_some();
    let had_query = parsed.query().is_some();
    parsed.set_query(None);
    parsed.set_fragment(None);
    if had_userinfo {
        let _ = parsed.set_password(None);
        let _ = parsed.set_username("***");
    }
    let mut shown = parsed.to_string();
    if had_query {
        shown.push_str("?***");
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_credentials_and_queries() {
        assert_eq!(
            redact_url("https://user:pass@api.example.com/v1/x?api_key=abc#frag"),
            "https://***@api.example.com/v1/x?***"
        );
        assert_eq!(redact_url("http://h:8080/p"), "http://h:8080/p");
        assert_eq!(
            redact_url("bad://u:p@host name/x?token=1"),
            "bad://***@host name/x?***"
        );
    }

    #[test]
    fn link_local_and_metadata_hosts_are_refused_unless_named() {
        let open = HttpPolicy::default();
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://[fe80::1]/",
            "http://[::ffff:169.254.169.254]/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://METADATA.google.internal./",
        ] {
            assert!(open.refusal(&Url::parse(url).unwrap()).is_some(), "{url}");
        }
        assert!(
            open.refusal(&Url::parse("http://127.0.0.1:8080/").unwrap())
                .is_none()
        );
        let named = HttpPolicy::allow_hosts(["169.254.169.254", "api.example.com"]);
        let metadata = Url::parse("http://169.254.169.254/").unwrap();
        assert!(named.refusal(&metadata).is_none());
        let other = Url::parse("http://other.example.com/").unwrap();
        assert!(named.refusal(&other).unwrap().contains("--allow-host"));
    }
}
