DELETE FROM spool_jobs WHERE queue = ?1 AND worker_id IS NULL
