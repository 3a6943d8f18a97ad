SELECT id, queue, job, envelope, batch_id, tags FROM spool_failed WHERE id IN ({ids})
ORDER BY failed_at, id FOR UPDATE
