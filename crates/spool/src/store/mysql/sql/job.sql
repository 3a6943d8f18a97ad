SELECT {columns}, {now}, reserved_at
FROM spool_jobs WHERE id = ?
