SELECT id, name, total, pending, failed, failed_ids, allow_failures, created_at, cancelled_at,
       finished_at
FROM spool_batches ORDER BY created_at DESC, id LIMIT ?1
