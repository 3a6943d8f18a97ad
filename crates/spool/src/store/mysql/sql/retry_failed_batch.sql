SELECT id, queue, job, envelope, batch_id, tags FROM spool_failed WHERE batch_id = ?
ORDER BY failed_at, id FOR UPDATE
