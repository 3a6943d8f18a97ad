SELECT {columns}, {now}, reserved_at, tags
FROM spool_jobs WHERE id = ?
