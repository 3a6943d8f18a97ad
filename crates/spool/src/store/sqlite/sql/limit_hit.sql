INSERT INTO spool_limits (key, at, expires_at) VALUES (?1, ?2, ?3)
