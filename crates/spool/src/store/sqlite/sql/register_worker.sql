INSERT INTO spool_workers (id, host, pid, queues, started_at, expires_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6)
ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at
