//! Helpers shared by the stores that talk to a database server through sqlx (PostgreSQL,
//! MySQL / MariaDB).

pub(crate) mod job_filter;
pub(crate) mod outcomes;
pub(crate) mod rows;
pub(crate) mod search;

/// 64-bit FNV-1a: a stable hash (unlike std's), so every process derives the same value (lock
/// names and keys, counter slots).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::fnv1a;

    #[test]
    fn fnv1a_is_the_standard_64_bit_hash() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(fnv1a(b"spool migrate a"), fnv1a(b"spool migrate b"));
    }
}
