INSERT INTO spool_kv (name, value, version, expires_at) VALUES (?, ?, 1, ?)
