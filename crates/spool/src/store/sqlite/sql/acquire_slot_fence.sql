SELECT 1 FROM spool_jobs WHERE id = ?1 AND worker_id = ?2 AND token = ?3
