DELETE FROM spool_jobs WHERE id = ?1
RETURNING id, queue, job, batch_id, unique_key, tags, attempts, created_at, reserved_at
