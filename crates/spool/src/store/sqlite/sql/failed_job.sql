SELECT id, queue, job, envelope, error, causes, attempts, failed_at, tags
FROM spool_failed WHERE id = ?1
