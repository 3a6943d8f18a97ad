//! Hiding secrets in URLs before they are shown: in errors, logs, `status` output and failed
//! records.
//!
//! Written without a URL parser on purpose: the URLs that most need hiding are the ones a
//! parser refuses (a typo in the scheme, a password with a raw `/`), and the same rule must
//! hold for a URL found inside free text (a driver's or HTTP client's error message).

/// What a hidden secret is shown as.
pub const REDACTED: &str = "***";

/// `url` with the password of its user information and every query value replaced by `***`:
/// `postgres://app:s3cr3t@db/app?sslmode=require` becomes
/// `postgres://app:***@db/app?sslmode=***`. Works on any text: what is not recognisably a URL
/// (no `scheme://`) is returned with only its query values hidden, and a URL that a parser
/// would refuse is still redacted.
///
/// ```
/// use spool::redact::redact_url;
/// assert_eq!(redact_url("redis://:pw@cache:6379/0"), "redis://:***@cache:6379/0");
/// assert_eq!(redact_url("https://api.test/x?api_key=k&v=1"), "https://api.test/x?api_key=***&v=***");
/// assert_eq!(redact_url("postgre://admin:p@ss/word@db/app"), "postgre://admin:***@db/app");
/// ```
pub fn redact_url(url: &str) -> String {
    let (before_fragment, fragment) = match url.find('#') {
        Some(at) => url.split_at(at),
        None => (url, ""),
    };
    let (base, query) = match before_fragment.find('?') {
        Some(at) => (&before_fragment[..at], Some(&before_fragment[at + 1..])),
        None => (before_fragment, None),
    };
    let mut out = String::with_capacity(url.len());
    match base.find("://") {
        Some(at) => {
            let (scheme, rest) = (&base[..at + 3], &base[at + 3..]);
            out.push_str(scheme);
            // The user information ends at the last `@`: a password may hold a raw `@` or
            // `/` that a parser would take for the host or path.
            match rest.rfind('@') {
                Some(end) => {
                    let userinfo = &rest[..end];
                    match userinfo.find(':') {
                        Some(colon) => {
                            out.push_str(&userinfo[..=colon]);
                            out.push_str(REDACTED);
                        }
                        None => out.push_str(userinfo),
                    }
                    out.push_str(&rest[end..]);
                }
                None => out.push_str(rest),
            }
        }
        None => out.push_str(base),
    }
    if let Some(query) = query {
        out.push('?');
        out.push_str(&redact_query(query));
    }
    out.push_str(fragment);
    out
}

/// Every `name=value` pair of a query string with its value replaced by `***`.
fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) if !value.is_empty() => format!("{name}={REDACTED}"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// `text` with every URL in it (`scheme://...` up to white space, a quote or a bracket)
/// passed through [`redact_url`]: for messages that quote a URL, such as a driver's or an
/// HTTP client's errors.
///
/// ```
/// use spool::redact::redact_urls_in;
/// assert_eq!(
///     redact_urls_in("error sending request for url (http://u:pw@h/?key=k): refused"),
///     "error sending request for url (http://u:***@h/?key=***): refused"
/// );
/// ```
pub fn redact_urls_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        // Walk back over the scheme: letters, digits, `+`, `-`, `.`.
        let scheme_start = rest[..at]
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            .last()
            .map_or(at, |(i, _)| i);
        let end = rest[at..]
            .find(|c: char| c.is_whitespace() || "\"'<>()[]{}`|\\^".contains(c))
            .map_or(rest.len(), |i| at + i);
        out.push_str(&rest[..scheme_start]);
        if scheme_start == at {
            out.push_str(&rest[at..end]);
        } else {
            out.push_str(&redact_url(&rest[scheme_start..end]));
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_query_values_are_hidden() {
        for (given, shown) in [
            ("sqlite://spool.db", "sqlite://spool.db"),
            ("sqlite:spool.db", "sqlite:spool.db"),
            ("postgres://app@db/app", "postgres://app@db/app"),
            (
                "postgres://app:s3cr3t@db:5432/app",
                "postgres://app:***@db:5432/app",
            ),
            (
                "postgres://app:p%40ss%2Fw@db/app?spool_schema=jobs&sslmode=require",
                "postgres://app:***@db/app?spool_schema=***&sslmode=***",
            ),
            ("mysql://root:@h/db", "mysql://root:***@h/db"),
            (
                "redis://:pw@cache/0?prefix=x",
                "redis://:***@cache/0?prefix=***",
            ),
            ("postgre://admin:pw@db/app", "postgre://admin:***@db/app"),
            ("ftp://x", "ftp://x"),
            ("not a url ?token=abc", "not a url ?token=***"),
            ("", ""),
            ("://:@", "://:***@"),
            ("https://h/p?flag&k=v#frag", "https://h/p?flag&k=***#frag"),
        ] {
            assert_eq!(redact_url(given), shown, "{given}");
        }
    }

    #[test]
    fn urls_inside_text_are_hidden() {
        assert_eq!(
            redact_urls_in("cannot reach \"postgres://a:b@h/d\" or redis://:c@r, ok?x=1"),
            "cannot reach \"postgres://a:***@h/d\" or redis://:***@r, ok?x=1"
        );
        assert_eq!(redact_urls_in("no url here"), "no url here");
        assert_eq!(redact_urls_in("://x"), "://x");
        assert_eq!(
            redact_urls_in("émoji→https://u:p@h"),
            "émoji→https://u:***@h"
        );
    }
}
