DELETE FROM spool_jobs WHERE id = ?1 AND worker_id IS NULL RETURNING tags
