-- Jobs held by a worker whose lease is no longer current (?1 is now), with their earlier losses.
SELECT id, recoveries, queue, job FROM spool_jobs
WHERE worker_id IS NOT NULL AND worker_id NOT IN (SELECT id FROM spool_workers WHERE expires_at > ?1)
