DELETE FROM spool_locks WHERE until <> 'expiry' AND owner IN
    (SELECT id FROM spool_jobs WHERE queue = ?1 AND worker_id IS NULL)
