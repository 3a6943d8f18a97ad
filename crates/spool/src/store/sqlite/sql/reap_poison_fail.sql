-- Records a lost job (?1) the poison-pill rule fails, at ?2; reap_poison.sql then deletes it.
INSERT INTO spool_failed (id, queue, job, envelope, error, causes, attempts, failed_at, batch_id,
                          tags)
SELECT id, queue, job, envelope,
       'worker lost ' || (recoveries + 1) || ' times while running this job',
       json_array(COALESCE(last_error, 'no error recorded before the losses')),
       attempts, ?2, batch_id, tags
FROM spool_jobs WHERE id = ?1
ON CONFLICT (id) DO UPDATE SET error = excluded.error, causes = excluded.causes,
    attempts = excluded.attempts, failed_at = excluded.failed_at,
    batch_id = excluded.batch_id, tags = excluded.tags
