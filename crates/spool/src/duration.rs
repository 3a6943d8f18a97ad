//! Durations as people type them: `500ms`, `5s`, `2m`, `1h30m`, or a bare number of seconds.

use std::time::Duration;

/// A duration string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration `{input}`: use a number of seconds (`5`, `0.5`) or units: `500ms`, `5s`, `2m`, `1h30m`, `1d`"
)]
pub struct DurationError {
    input: String,
}

/// Parses a bare (possibly fractional) number of seconds, or a duration with units as
/// [`humantime`] reads them: `500ms`, `5s`, `2m`, `1h30m`, `1d`.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(spool::parse_duration("500ms").unwrap(), Duration::from_millis(500));
/// assert_eq!(spool::parse_duration("2m").unwrap(), Duration::from_secs(120));
/// assert_eq!(spool::parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
/// assert_eq!(spool::parse_duration("1.5").unwrap(), Duration::from_millis(1500));
/// assert!(spool::parse_duration("soon").is_err());
/// ```
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let err = || DurationError {
        input: input.to_string(),
    };
    let s = input.trim();
    let parsed = if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        // Spool's own rule on top of humantime's: a bare number is seconds.
        let secs: f64 = s.parse().map_err(|_| err())?;
        if !(0.0..=MAX_SECS).contains(&secs) {
            return Err(err());
        }
        Duration::from_secs_f64(secs)
    } else {
        humantime::parse_duration(s).map_err(|_| err())?
    };
    if parsed.as_secs_f64() > MAX_SECS {
        return Err(err());
    }
    Ok(parsed)
}

/// The longest duration accepted: about 31,700 years, far past any sensible delay, and well
/// inside every store's time arithmetic.
const MAX_SECS: f64 = 1e12;

/// Parses a comma-separated list of durations (`1,5,10` or `500ms,2s`).
pub fn parse_duration_list(input: &str) -> Result<Vec<Duration>, DurationError> {
    input.split(',').map(parse_duration).collect()
}

/// Formats a duration compactly (`250ms`, `5s`, `1.5s`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// A duration as whole milliseconds for the stores (saturating).
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_bare_numbers() {
        let cases = [
            ("0", 0),
            ("5", 5_000),
            ("0.25", 250),
            ("500ms", 500),
            ("5s", 5_000),
            ("2m", 120_000),
            ("1h", 3_600_000),
            ("1h30m", 5_400_000),
            ("1d", 86_400_000),
            ("2min 5s", 125_000),
            (" 3s ", 3_000),
        ];
        for (input, ms) in cases {
            assert_eq!(
                parse_duration(input).unwrap(),
                Duration::from_millis(ms),
                "{input}"
            );
        }
    }

    #[test]
    fn rejects_garbage() {
        for input in [
            "",
            "s",
            "5x",
            "-1",
            "1e400",
            "five",
            "99999999999999999999h",
        ] {
            assert!(parse_duration(input).is_err(), "{input}");
        }
    }

    #[test]
    fn lists() {
        assert_eq!(
            parse_duration_list("1,5,10").unwrap(),
            vec![
                Duration::from_secs(1),
                Duration::from_secs(5),
                Duration::from_secs(10)
            ]
        );
        assert!(parse_duration_list("1,,2").is_err());
    }

    #[test]
    fn formats() {
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_secs(5)), "5s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
    }
}
