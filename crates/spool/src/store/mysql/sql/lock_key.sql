INSERT INTO spool_keys (kind, name, used_at) VALUES (?, ?, {now})
ON DUPLICATE KEY UPDATE used_at = {now}
