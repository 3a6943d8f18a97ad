UPDATE spool_jobs SET worker_id = NULL, reserved_at = NULL, available_at = ?1,
       attempts = attempts - 1, recoveries = recoveries + 1
WHERE worker_id IS NOT NULL AND worker_id NOT IN (SELECT id FROM spool_workers WHERE expires_at > ?1)
