SELECT id, host, pid, queues, expires_at, lease_ms, {now} FROM spool_workers
WHERE expires_at > {now}
ORDER BY started_at, id
