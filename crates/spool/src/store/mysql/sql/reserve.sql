SELECT {columns}, unique_key
FROM spool_jobs
WHERE queue = ? AND worker_id IS NULL AND available_at <= {now}
ORDER BY available_at, seq
LIMIT ?
FOR UPDATE SKIP LOCKED
