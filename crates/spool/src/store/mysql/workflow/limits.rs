//! Limiters and concurrency slots on MySQL (`limit` and `acquire_slot` in `workflow.rs`): a
//! sliding-window counter per key, and at most N holders per key, each decided by one caller
//! at a time.
//!
//! # Why a locked key row
//!
//! The limiter keeps one row per hit and the slots one row per holder, so an idle key has no
//! row at all: two first callers would both count zero and both go ahead, and READ COMMITTED
//! takes no gap locks that could stop them. Each call therefore first locks a row of its own
//! key in `spool_keys`, creating it if needed, with one `INSERT ... ON DUPLICATE KEY UPDATE`:
//! on a duplicate that statement takes an exclusive lock on the existing row (a plain insert
//! would take a shared one, and two callers upgrading shared locks deadlock), and a concurrent
//! first insert of the same key makes it wait for that insert's transaction. Every later
//! statement of the call then runs alone among the callers of that key, until the commit.
//!
//! `GET_LOCK` was the other candidate, and is not used: its locks belong to the session, not
//! the transaction, so a call abandoned half-way (a cancelled future, a lost reply) could hand
//! its pooled connection back still holding the lock and block the key's callers until that
//! connection closes, and its names are cut at 64 characters (keys would have to be hashed).
//! The row lock is released by the commit or the rollback whatever happens, a wait for it is
//! bounded by the session's lock wait timeout (and run again like any other, see `retry`),
//! and only callers of the same key wait. The rows stay (one per key ever used), tiny.

use sqlx::MySqlConnection;

use crate::store::LimitMode;
use crate::store::mysql::sql;

/// What a key row serialises: the limiter or the slots of that key (separate, so a limiter
/// and a slot key with the same name do not wait for each other).
#[derive(Debug, Clone, Copy)]
pub(super) enum KeyKind {
    Limit,
    Slot,
}

impl KeyKind {
    fn as_str(self) -> &'static str {
        match self {
            KeyKind::Limit => "limit",
            KeyKind::Slot => "slot",
        }
    }
}

/// Locks the row of `key` (creating it) until the caller's transaction ends: see the module
/// docs.
pub(super) async fn lock_key(
    conn: &mut MySqlConnection,
    kind: KeyKind,
    key: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(sql(include_str!("../sql/lock_key.sql")))
        .bind(kind.as_str())
        .bind(key)
        .execute(conn)
        .await?;
    Ok(())
}

/// The hit a limiter call records while fewer than `cap` are in the window.
pub(super) fn cap(mode: LimitMode) -> i64 {
    match mode {
        LimitMode::Acquire(limit) => i64::from(limit),
        LimitMode::Record => i64::MAX,
        LimitMode::Peek => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_set_the_cap() {
        assert_eq!(cap(LimitMode::Acquire(5)), 5);
        assert_eq!(cap(LimitMode::Peek), 0);
        assert_eq!(cap(LimitMode::Record), i64::MAX);
    }
}
