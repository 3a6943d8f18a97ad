SELECT at, queue, job, series, bucket, n
FROM spool_metrics
WHERE res = ?1 AND at >= ?2 AND (?3 IS NULL OR queue = ?3)
