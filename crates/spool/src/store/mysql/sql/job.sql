SELECT {columns}, {now}
FROM spool_jobs WHERE id = ?
