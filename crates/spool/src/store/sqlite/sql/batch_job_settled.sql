-- Counts a finished job (?3, failed if ?2 = 1) in its batch (?1) at ?4, and returns what the
-- callback decision needs. Without allow_failures the first failure cancels the batch.
UPDATE spool_batches SET
    pending = MAX(pending - 1, 0),
    failed = failed + ?2,
    failed_ids = CASE WHEN ?2 = 1 THEN json_insert(failed_ids, '$[#]', ?3) ELSE failed_ids END,
    cancelled_at = CASE WHEN ?2 = 1 AND allow_failures = 0 THEN COALESCE(cancelled_at, ?4)
                        ELSE cancelled_at END,
    finished_at = CASE WHEN pending - 1 <= 0 THEN COALESCE(finished_at, ?4) ELSE finished_at END
WHERE id = ?1
RETURNING pending, failed, then_fired, catch_fired, finally_fired
