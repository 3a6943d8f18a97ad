SELECT {columns}
FROM spool_batches ORDER BY created_at DESC, id LIMIT ?
