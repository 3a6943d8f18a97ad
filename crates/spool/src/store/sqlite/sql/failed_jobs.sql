SELECT id, queue, job, envelope, error, causes, attempts, failed_at, tags
FROM spool_failed WHERE (?1 IS NULL OR queue = ?1)
ORDER BY failed_at DESC, id LIMIT ?2
