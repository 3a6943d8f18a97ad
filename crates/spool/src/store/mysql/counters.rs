//! The counters in `spool_meta`: `processed` and `changes`, each spread over slots.

use sqlx::MySqlConnection;

/// Adds to the counters of `slot`, inside the caller's transaction. Call it last in a
/// transaction: the rows are shared with other workers, so they should stay locked only
/// until the commit that follows.
pub(super) async fn bump(
    conn: &mut MySqlConnection,
    slot: i64,
    processed: u64,
    changes: u64,
) -> Result<(), sqlx::Error> {
    if processed == 0 && changes == 0 {
        return Ok(());
    }
    // One statement for both; rows are locked in key order (`changes` before `processed`),
    // the same order every transaction uses, so bumps never deadlock each other.
    sqlx::query(
        "UPDATE spool_meta
         SET value = value + CASE name WHEN 'processed' THEN ? ELSE ? END
         WHERE slot = ? AND name IN (?, ?)",
    )
    .bind(i64::try_from(processed).unwrap_or(i64::MAX))
    .bind(i64::try_from(changes).unwrap_or(i64::MAX))
    .bind(slot)
    .bind(if processed > 0 {
        "processed"
    } else {
        "changes"
    })
    .bind(if changes > 0 { "changes" } else { "processed" })
    .execute(conn)
    .await?;
    Ok(())
}
