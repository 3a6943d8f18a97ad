UPDATE spool_batches
SET pending = pending + ?, failed = GREATEST(failed - ?, 0), failed_ids = ?,
    cancelled_at = NULL, finished_at = NULL
WHERE id = ?
