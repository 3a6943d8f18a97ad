SELECT id, queue, job, envelope, batch_id, tags FROM spool_failed
WHERE (? IS NULL OR queue = ?)
ORDER BY failed_at, id FOR UPDATE
