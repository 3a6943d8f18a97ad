//! Value parsers shared by the commands.

use std::time::{Duration, SystemTime};

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

/// clap value parser for an RFC 3339 instant with its offset (`2030-01-31T09:00:00+02:00`,
/// `...Z`). A time without a zone is refused rather than guessed.
pub(crate) fn instant(s: &str) -> Result<SystemTime, String> {
    let s = s.trim();
    match chrono::DateTime::parse_from_rfc3339(s) {
        Ok(t) => Ok(SystemTime::from(t)),
        Err(_) if chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").is_ok() => Err(
            format!("`{s}` has no time zone: add one, e.g. `{s}Z` for UTC or `{s}+02:00`"),
        ),
        Err(e) => Err(format!(
            "invalid time `{s}` ({e}); use RFC 3339 with a zone, e.g. 2030-01-31T09:00:00+02:00"
        )),
    }
}

/// The delay until `at` (zero if it has passed), rounded up to the millisecond: the store
/// adds it to its own clock (D-7), so the job is never available before `at`.
pub(crate) fn until(at: SystemTime) -> Duration {
    let left = at.duration_since(SystemTime::now()).unwrap_or_default();
    Duration::from_millis(u64::try_from(left.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX))
}

/// A list of durations; an alias so clap takes the whole list as one value.
pub(crate) type DurationList = Vec<Duration>;

/// A list of names; an alias so clap takes the whole list as one value.
pub(crate) type NameList = Vec<String>;
