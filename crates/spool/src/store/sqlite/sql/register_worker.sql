INSERT INTO spool_workers (id, host, pid, queues, started_at, expires_at, lease_ms)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6 - ?5)
ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at, lease_ms = excluded.lease_ms
