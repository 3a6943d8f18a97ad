DELETE FROM spool_jobs WHERE id = ?1 AND worker_id = ?2 AND token = ?3
RETURNING id, queue, job, batch_id, unique_key, tags, attempts, created_at, reserved_at
