SELECT id, queue, job, envelope, error, causes, attempts, failed_at
FROM spool_failed WHERE id = ?1
