SELECT at, queue, job, series, bucket, n
FROM spool_metrics
WHERE res = ? AND at >= ? AND (? IS NULL OR queue = ?)
