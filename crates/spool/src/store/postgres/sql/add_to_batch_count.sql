UPDATE {schema}.batches
SET total = total + $2, pending = pending + $2, finished_at = NULL
WHERE id = $1
