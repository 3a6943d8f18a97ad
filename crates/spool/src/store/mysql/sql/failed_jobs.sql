SELECT {columns}
FROM spool_failed WHERE (? IS NULL OR queue = ?)
ORDER BY failed_at DESC, id LIMIT ?
