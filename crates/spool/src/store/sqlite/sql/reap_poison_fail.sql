-- Records the jobs of dead workers (?1 is now) that reach their `max_recoveries`-th (?2) loss
-- as failed; reap_poison.sql then deletes them.
INSERT INTO spool_failed (id, queue, job, envelope, error, causes, attempts, failed_at, batch_id)
SELECT id, queue, job, envelope,
       'worker lost ' || (recoveries + 1) || ' times while running this job',
       json_array(COALESCE(last_error, 'no error recorded before the losses')),
       attempts, ?1, batch_id
FROM spool_jobs
WHERE worker_id IS NOT NULL AND worker_id NOT IN (SELECT id FROM spool_workers WHERE expires_at > ?1)
  AND recoveries + 1 >= ?2
ON CONFLICT (id) DO UPDATE SET error = excluded.error, causes = excluded.causes,
    attempts = excluded.attempts, failed_at = excluded.failed_at,
    batch_id = excluded.batch_id
