//! What a provider's response headers say about its limits: OpenAI's
//! `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, Anthropic's
//! `anthropic-ratelimit-*`, and `retry-after` / `retry-after-ms`.

use reqwest::header::HeaderMap;

/// The limit signals of one response; every field is optional, as providers send different
/// subsets.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Signals {
    /// The account's requests per minute.
    pub(crate) limit_requests: Option<u64>,
    /// The account's tokens per minute.
    pub(crate) limit_tokens: Option<u64>,
    /// Requests left in the current window.
    pub(crate) remaining_requests: Option<u64>,
    /// Tokens left in the current window.
    pub(crate) remaining_tokens: Option<u64>,
    /// Until the requests limit is back to full, in ms.
    pub(crate) reset_requests_ms: Option<u64>,
    /// Until the tokens limit is back to full, in ms.
    pub(crate) reset_tokens_ms: Option<u64>,
    /// How long the server asks to wait before the next request, in ms.
    pub(crate) retry_after_ms: Option<u64>,
}

impl Signals {
    /// Reads the signals of `headers`; `now_ms` dates Anthropic's absolute reset times.
    pub(crate) fn read(headers: &HeaderMap, now_ms: i64) -> Signals {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let number = |name: &str| text(name).and_then(|v| v.trim().parse::<u64>().ok());
        let either = |a: &str, b: &str| number(a).or_else(|| number(b));
        let reset = |openai: &str, anthropic: &str| {
            text(openai)
                .and_then(parse_openai_duration)
                .or_else(|| text(anthropic).and_then(|at| until_rfc3339(at, now_ms)))
        };
        let retry_after_ms = number("retry-after-ms").or_else(|| {
            let value = text("retry-after")?;
            match value.trim().parse::<f64>() {
                Ok(seconds) if seconds >= 0.0 => Some((seconds * 1000.0).ceil() as u64),
                _ => until_http_date(value, now_ms),
            }
        });
        Signals {
            limit_requests: either(
                "x-ratelimit-limit-requests",
                "anthropic-ratelimit-requests-limit",
            ),
            limit_tokens: either(
                "x-ratelimit-limit-tokens",
                "anthropic-ratelimit-tokens-limit",
            ),
            remaining_requests: either(
                "x-ratelimit-remaining-requests",
                "anthropic-ratelimit-requests-remaining",
            ),
            remaining_tokens: either(
                "x-ratelimit-remaining-tokens",
                "anthropic-ratelimit-tokens-remaining",
            ),
            reset_requests_ms: reset(
                "x-ratelimit-reset-requests",
                "anthropic-ratelimit-requests-reset",
            ),
            reset_tokens_ms: reset(
                "x-ratelimit-reset-tokens",
                "anthropic-ratelimit-tokens-reset",
            ),
            retry_after_ms,
        }
    }
}

/// OpenAI's reset durations: `1s`, `6m0s`, `1h2m3.5s`, `20ms`, `0.5s`.
pub(crate) fn parse_openai_duration(text: &str) -> Option<u64> {
    let mut total = 0.0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit_ms, len) = if rest.starts_with("ms") {
            (1.0, 2)
        } else if rest.starts_with('h') {
            (3_600_000.0, 1)
        } else if rest.starts_with('m') {
            (60_000.0, 1)
        } else if rest.starts_with('s') {
            (1_000.0, 1)
        } else {
            return None;
        };
        total += value * unit_ms;
        rest = &rest[len..];
    }
    Some(total.ceil() as u64)
}

/// Milliseconds from `now_ms` until an RFC 3339 instant (0 if past).
fn until_rfc3339(text: &str, now_ms: i64) -> Option<u64> {
    let at = chrono_like::parse_rfc3339_ms(text)?;
    Some((at - now_ms).max(0) as u64)
}

/// Milliseconds from `now_ms` until an HTTP date (0 if past).
fn until_http_date(text: &str, now_ms: i64) -> Option<u64> {
    let at = httpdate::parse_http_date(text.trim()).ok()?;
    let at_ms = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as i64;
    Some((at_ms - now_ms).max(0) as u64)
}

/// A small RFC 3339 reader (`2026-12-05T10:00:00Z`, fractions and offsets), so the module
/// needs no date crate.
mod chrono_like {
    /// Milliseconds since the Unix epoch.
    pub(super) fn parse_rfc3339_ms(text: &str) -> Option<i64> {
        let t = text.trim();
        let (date, time) = t.split_once(['T', 't', ' '])?;
        let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
        let (y, m, day) = (d.next()??, d.next()??, d.next()??);
        let (clock, offset_ms) = if let Some(clock) = time.strip_suffix(['Z', 'z']) {
            (clock, 0)
        } else {
            let at = time.rfind(['+', '-'])?;
            let (clock, offset) = time.split_at(at);
            let sign = if offset.starts_with('-') { -1 } else { 1 };
            let (oh, om) = offset[1..].split_once(':')?;
            (
                clock,
                sign * (oh.parse::<i64>().ok()? * 60 + om.parse::<i64>().ok()?) * 60_000,
            )
        };
        let mut c = clock.splitn(3, ':');
        let (h, min) = (
            c.next()?.parse::<i64>().ok()?,
            c.next()?.parse::<i64>().ok()?,
        );
        let seconds: f64 = c.next()?.parse().ok()?;
        // Days from the civil date (Howard Hinnant's algorithm).
        let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * m + 2) / 5 + day - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        Some(
            days * 86_400_000 + (h * 3600 + min * 60) * 1000 + (seconds * 1000.0) as i64
                - offset_ms,
        )
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderName, HeaderValue};

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(
                HeaderName::from_static(k),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn openai_durations_parse() {
        assert_eq!(parse_openai_duration("1s"), Some(1000));
        assert_eq!(parse_openai_duration("6m0s"), Some(360_000));
        assert_eq!(parse_openai_duration("20ms"), Some(20));
        assert_eq!(parse_openai_duration("1.5s"), Some(1500));
        assert_eq!(parse_openai_duration("1h2m3s"), Some(3_723_000));
        assert_eq!(parse_openai_duration("soon"), None);
        assert_eq!(parse_openai_duration(""), None);
    }

    #[test]
    fn openai_headers_are_read() {
        let s = Signals::read(
            &headers(&[
                ("x-ratelimit-limit-requests", "500"),
                ("x-ratelimit-remaining-requests", "499"),
                ("x-ratelimit-reset-requests", "120ms"),
                ("x-ratelimit-limit-tokens", "30000"),
                ("x-ratelimit-remaining-tokens", "29000"),
                ("x-ratelimit-reset-tokens", "2s"),
                ("retry-after", "2"),
                ("retry-after-ms", "1500"),
            ]),
            0,
        );
        assert_eq!(s.limit_requests, Some(500));
        assert_eq!(s.remaining_tokens, Some(29000));
        assert_eq!(s.reset_requests_ms, Some(120));
        assert_eq!(s.reset_tokens_ms, Some(2000));
        assert_eq!(
            s.retry_after_ms,
            Some(1500),
            "the ms header is the precise one"
        );
    }

    #[test]
    fn anthropic_headers_and_retry_after_forms_are_read() {
        let now = parse("2026-12-05T10:00:00Z");
        let s = Signals::read(
            &headers(&[
                ("anthropic-ratelimit-requests-limit", "50"),
                ("anthropic-ratelimit-requests-remaining", "0"),
                (
                    "anthropic-ratelimit-requests-reset",
                    "2026-12-05T10:00:01.5Z",
                ),
                ("retry-after", "3"),
            ]),
            now,
        );
        assert_eq!(s.limit_requests, Some(50));
        assert_eq!(s.remaining_requests, Some(0));
        assert_eq!(s.reset_requests_ms, Some(1500));
        assert_eq!(s.retry_after_ms, Some(3000));
        let date = Signals::read(
            &headers(&[("retry-after", "Sat, 05 Dec 2026 10:00:04 GMT")]),
            now,
        );
        assert_eq!(date.retry_after_ms, Some(4000));
        assert_eq!(parse("2026-12-05T11:00:00+01:00"), now);
    }

    fn parse(text: &str) -> i64 {
        chrono_like::parse_rfc3339_ms(text).unwrap()
    }
}
