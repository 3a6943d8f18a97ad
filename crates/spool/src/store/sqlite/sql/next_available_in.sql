SELECT MIN(available_at) FROM spool_jobs
WHERE worker_id IS NULL AND queue IN (SELECT value FROM json_each(?1))
