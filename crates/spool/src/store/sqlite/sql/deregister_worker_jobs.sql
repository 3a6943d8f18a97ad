UPDATE spool_jobs SET worker_id = NULL, reserved_at = NULL, attempts = attempts - 1
WHERE worker_id = ?1
