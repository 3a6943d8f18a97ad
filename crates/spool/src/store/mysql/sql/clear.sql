DELETE FROM spool_jobs WHERE queue = ? AND worker_id IS NULL
