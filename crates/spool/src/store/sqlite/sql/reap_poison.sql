DELETE FROM spool_jobs
WHERE worker_id IS NOT NULL AND worker_id NOT IN (SELECT id FROM spool_workers WHERE expires_at > ?1)
  AND recoveries + 1 >= ?2
RETURNING id, queue, job, batch_id, unique_key
