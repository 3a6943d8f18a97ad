//! Value parsers shared by the commands.

use std::time::Duration;

/// clap value parser for durations (`500ms`, `5s`, `2m`, bare seconds).
pub(crate) fn duration(s: &str) -> Result<Duration, String> {
    spool::parse_duration(s).map_err(|e| e.to_string())
}

/// clap value parser for `work --sleep`: a poll interval of zero would spin a core.
pub(crate) fn poll_interval(s: &str) -> Result<Duration, String> {
    let d = duration(s)?;
    if d < Duration::from_millis(10) {
        return Err(format!(
            "`{s}` would poll the store in a busy loop; use at least 10ms"
        ));
    }
    Ok(d)
}

/// clap value parser for comma lists of durations.
pub(crate) fn duration_list(s: &str) -> Result<Vec<Duration>, String> {
    spool::parse_duration_list(s).map_err(|e| e.to_string())
}

/// clap value parser for a non-negative attempt count with a clear message for `-1`.
pub(crate) fn tries(s: &str) -> Result<u32, String> {
    match s.trim().parse::<i64>() {
        Ok(n) if n < 0 => Err(format!("tries must be 0 (unlimited) or more, not {n}")),
        Ok(n) => u32::try_from(n).map_err(|_| format!("tries {n} is too large")),
        Err(_) => Err(format!("tries must be a whole number, not `{s}`")),
    }
}

/// clap value parser for comma lists of names (`high,default`).
pub(crate) fn names(s: &str) -> Result<Vec<String>, String> {
    let names: Vec<String> = s.split(',').map(|n| n.trim().to_string()).collect();
    if names.iter().any(String::is_empty) {
        return Err(format!("`{s}` has an empty name"));
    }
    Ok(names)
}

/// Time until an RFC 3339 instant (zero if it has passed).
pub(crate) fn until(at: &str) -> Result<Duration, String> {
    let t = humantime::parse_rfc3339_weak(at).map_err(|e| {
        format!("invalid time `{at}` ({e}); use RFC 3339, e.g. 2026-01-31T09:00:00Z")
    })?;
    Ok(t.duration_since(std::time::SystemTime::now())
        .unwrap_or_default())
}

/// A list of durations; an alias so clap takes the whole list as one value.
pub(crate) type DurationList = Vec<Duration>;

/// A list of names; an alias so clap takes the whole list as one value.
pub(crate) type NameList = Vec<String>;
