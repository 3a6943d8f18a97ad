//! Limiters and concurrency slots on MySQL: a sliding-window counter per key, and at most N
//! holders per key, each decided by one caller at a time.
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

use std::time::Duration;

use sqlx::MySqlConnection;

use super::{
    MysqlStore,
    retry::{Begin, TxError, idempotent, in_transaction},
    sql::{MAX_OFFSET_MS, sql},
};
use crate::{
    duration::millis,
    store::{LimitMode, LimitState, SlotRequest, StoreResult},
};

/// What a key row serialises: the limiter or the slots of that key (separate, so a limiter
/// and a slot key with the same name do not wait for each other).
#[derive(Debug, Clone, Copy)]
enum KeyKind {
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
async fn lock_key(conn: &mut MySqlConnection, kind: KeyKind, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query(sql(
        "INSERT INTO spool_keys (kind, name, used_at) VALUES (?, ?, {now})
         ON DUPLICATE KEY UPDATE used_at = {now}",
    ))
    .bind(kind.as_str())
    .bind(key)
    .execute(conn)
    .await?;
    Ok(())
}

/// The hit a limiter call records while fewer than `cap` are in the window.
fn cap(mode: LimitMode) -> i64 {
    match mode {
        LimitMode::Acquire(limit) => i64::from(limit),
        LimitMode::Record => i64::MAX,
        LimitMode::Peek => 0,
    }
}

impl MysqlStore {
    /// One sliding-window limiter call: counts the hits in the window, drops those that left
    /// it and records a hit as `mode` says, all under the key's lock.
    pub(super) async fn limit_tx(
        &self,
        key: &str,
        window: Duration,
        mode: LimitMode,
    ) -> StoreResult<LimitState> {
        let window_ms = millis(window).min(MAX_OFFSET_MS);
        let cap = cap(mode);
        let (count, oldest, hit, now) = in_transaction!(&self.pool, Begin::Write, |conn| {
            lock_key(conn, KeyKind::Limit, key).await?;
            // One clock reading for the whole call.
            let (now, count, oldest, expired): (i64, i64, Option<i64>, i64) =
                sqlx::query_as(sql("SELECT c.ms,
                            CAST(COALESCE(SUM(l.at > c.ms - ?), 0) AS SIGNED),
                            MIN(CASE WHEN l.at > c.ms - ? THEN l.at END),
                            CAST(COALESCE(SUM(l.at <= c.ms - ?), 0) AS SIGNED)
                     FROM (SELECT {now} AS ms) c
                     LEFT JOIN spool_limits l ON l.name = ?
                     GROUP BY c.ms"))
                .bind(window_ms)
                .bind(window_ms)
                .bind(window_ms)
                .bind(key)
                .fetch_one(&mut *conn)
                .await?;
            if expired > 0 {
                sqlx::query("DELETE FROM spool_limits WHERE name = ? AND at <= ?")
                    .bind(key)
                    .bind(now - window_ms)
                    .execute(&mut *conn)
                    .await?;
            }
            let hit = count < cap;
            if hit {
                sqlx::query("INSERT INTO spool_limits (name, at) VALUES (?, ?)")
                    .bind(key)
                    .bind(now)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok::<_, TxError>((count, oldest, hit, now))
        })?;
        let oldest = oldest.or(hit.then_some(now));
        let resets_in = oldest.map_or(0, |at| (at + window_ms - now).max(0));
        Ok(LimitState {
            hit,
            count: u32::try_from(count + i64::from(hit)).unwrap_or(u32::MAX),
            resets_in: Duration::from_millis(u64::try_from(resets_in).unwrap_or(0)),
        })
    }

    /// Forgets every hit of `key`.
    pub(super) async fn clear_limit_now(&self, key: &str) -> StoreResult<()> {
        // Deleting twice is harmless.
        idempotent!(&self.pool, |conn| {
            sqlx::query("DELETE FROM spool_limits WHERE name = ?")
                .bind(key)
                .execute(conn)
                .await
        })?;
        Ok(())
    }

    /// Takes a concurrency slot for a job its worker holds under `token`, under the key's lock
    /// so that two callers cannot both see a free slot and both take it.
    pub(super) async fn acquire_slot_tx(
        &self,
        worker_id: &str,
        request: &SlotRequest,
    ) -> StoreResult<bool> {
        let expire_after = request.expire_after.map(|d| millis(d).min(MAX_OFFSET_MS));
        in_transaction!(&self.pool, Begin::Write, |conn| {
            lock_key(conn, KeyKind::Slot, &request.key).await?;
            // The fence, and the mark that tells the job's settlement to free its slots (the
            // fast settle path leaves marked jobs alone). It locks the job's row until the
            // commit, so a settlement of the job either ran before (the fence fails) or runs
            // after and sees the slot. Rows matched, not rows changed (the driver asks for
            // found rows): a job asking again is still its holder.
            let held = sqlx::query(
                "UPDATE spool_jobs SET took_slot = 1 WHERE id = ? AND worker_id = ? AND token = ?",
            )
            .bind(&request.job_id)
            .bind(worker_id)
            .bind(request.token)
            .execute(&mut *conn)
            .await?
            .rows_affected()
                > 0;
            if !held {
                return Ok::<_, TxError>(false);
            }
            // Slots of expired holders or dead workers are free.
            sqlx::query(sql(
                "DELETE s FROM spool_slots s
                 LEFT JOIN spool_workers w ON w.id = s.worker_id AND w.expires_at > {now}
                 WHERE s.name = ?
                   AND ((s.expires_at IS NOT NULL AND s.expires_at <= {now}) OR w.id IS NULL)",
            ))
            .bind(&request.key)
            .execute(&mut *conn)
            .await?;
            let (taken, mine): (i64, i64) = sqlx::query_as(
                "SELECT COUNT(*), CAST(COALESCE(SUM(holder = ?), 0) AS SIGNED)
                 FROM spool_slots WHERE name = ?",
            )
            .bind(&request.job_id)
            .bind(&request.key)
            .fetch_one(&mut *conn)
            .await?;
            if mine > 0 {
                return Ok(true);
            }
            if taken >= i64::from(request.limit) {
                return Ok(false);
            }
            sqlx::query(sql(
                "INSERT INTO spool_slots (name, holder, worker_id, expires_at)
                 VALUES (?, ?, ?, {now} + ?)",
            ))
            .bind(&request.key)
            .bind(&request.job_id)
            .bind(worker_id)
            .bind(expire_after)
            .execute(&mut *conn)
            .await?;
            Ok(true)
        })
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
