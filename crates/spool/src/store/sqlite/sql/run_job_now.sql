UPDATE spool_jobs SET available_at = ?1
WHERE id = ?2 AND worker_id IS NULL AND available_at > ?1
