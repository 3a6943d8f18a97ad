UPDATE spool_batches
SET total = total + ?, pending = pending + ?, finished_at = NULL
WHERE id = ?
