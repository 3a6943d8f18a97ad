SELECT id, host, pid, queues FROM spool_workers
WHERE expires_at > {now}
ORDER BY started_at, id
