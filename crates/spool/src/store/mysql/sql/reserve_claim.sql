UPDATE spool_jobs
SET worker_id = ?, token = token + 1, reserved_at = ?, attempts = attempts + 1
WHERE seq IN ({seqs})
