INSERT INTO spool_workers (id, host, pid, queues, started_at, expires_at)
VALUES (?, ?, ?, ?, {now}, {now} + ?)
ON DUPLICATE KEY UPDATE expires_at = {now} + ?
