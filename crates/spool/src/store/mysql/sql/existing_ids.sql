SELECT id FROM spool_jobs WHERE id IN ({ids})
