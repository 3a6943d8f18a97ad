SELECT worker_id, id FROM spool_jobs WHERE worker_id IS NOT NULL ORDER BY seq
