INSERT INTO spool_workers (id, host, pid, queues, started_at, expires_at, lease_ms)
VALUES (?, ?, ?, ?, {now}, {now} + ?, ?)
ON DUPLICATE KEY UPDATE expires_at = {now} + ?, lease_ms = VALUES(lease_ms)
