//! Pieces of SQL every statement of the MySQL store is built from: the database clock,
//! placeholder lists and counter slots.

use sqlx::AssertSqlSafe;

/// The database clock in milliseconds since the epoch (D-7). `NOW(3)` is fixed for the length of
/// one statement, so a statement reads one instant however often it names the clock; sessions
/// run with `time_zone = '+00:00'`, so converting it back with `UNIX_TIMESTAMP` is exact.
pub(super) const NOW_MS: &str = "CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)";

/// Longest delay or retry window a time is offset by (about 100 years): larger ones mean
/// "practically never" and would otherwise overflow BIGINT milliseconds.
pub(super) const MAX_OFFSET_MS: i64 = 100 * 365 * 24 * 3600 * 1000;

/// Rows per multi-row statement: well under the protocol's 65,535 placeholders.
pub(super) const ROWS_PER_STATEMENT: usize = 500;

/// Counters are spread over this many rows of `spool_meta` (see schema.sql).
pub(super) const COUNTER_SLOTS: u64 = 16;

/// A statement with `{now}` replaced by [`NOW_MS`]. Everything substituted is a constant or a
/// list of `?` placeholders, so the result is safe to run.
pub(super) fn sql(template: &str) -> AssertSqlSafe<String> {
    AssertSqlSafe(template.replace("{now}", NOW_MS))
}

/// `?, ?, ?`: `n` placeholders for an `IN (...)` list.
pub(super) fn list(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// `(?, ?), (?, ?)`: `rows` tuples of `width` placeholders.
pub(super) fn tuples(rows: usize, width: usize) -> String {
    let one = format!("({})", list(width));
    vec![one; rows].join(", ")
}

/// The counter slot a worker bumps: a stable hash of its id, so each worker keeps to one row
/// and concurrent workers mostly to different rows.
pub(super) fn slot(worker_id: &str) -> i64 {
    (fnv1a(worker_id.as_bytes()) % COUNTER_SLOTS) as i64
}

/// 64-bit FNV-1a: a stable hash (unlike std's), so every process derives the same value.
pub(super) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_slots() {
        assert_eq!(list(3), "?, ?, ?");
        assert_eq!(tuples(2, 2), "(?, ?), (?, ?)");
        assert!(sql("SELECT {now}").0.contains("NOW(3)"));
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(slot("w-1"), slot("w-1"));
        assert!((0..COUNTER_SLOTS as i64).contains(&slot("anything")));
    }
}
