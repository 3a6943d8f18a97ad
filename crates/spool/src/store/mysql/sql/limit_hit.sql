INSERT INTO spool_limits (name, at, expires_at) VALUES (?, ?, ?)
