INSERT INTO spool_failed (id, queue, job, envelope, error, causes, attempts, failed_at, batch_id,
                          tags)
SELECT id, queue, job, envelope, ?4, ?5, attempts, ?6, batch_id, tags
FROM spool_jobs WHERE id = ?1 AND worker_id = ?2 AND token = ?3
ON CONFLICT (id) DO UPDATE SET queue = excluded.queue, job = excluded.job,
    envelope = excluded.envelope, error = excluded.error,
    causes = excluded.causes, attempts = excluded.attempts,
    failed_at = excluded.failed_at, batch_id = excluded.batch_id, tags = excluded.tags
