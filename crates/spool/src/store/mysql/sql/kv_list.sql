SELECT name, value, version, expires_at FROM spool_kv
WHERE name >= ? AND (? IS NULL OR name < ?) AND (expires_at IS NULL OR expires_at > ?)
ORDER BY name
LIMIT ?
