DELETE FROM spool_jobs WHERE id = ? AND worker_id IS NULL
