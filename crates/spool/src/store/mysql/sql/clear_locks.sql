DELETE l FROM spool_locks l
JOIN spool_jobs j ON j.unique_key = l.name AND j.id = l.owner
WHERE j.queue = ? AND j.worker_id IS NULL AND l.held_until <> 'expiry'
