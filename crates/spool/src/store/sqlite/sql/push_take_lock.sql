INSERT INTO spool_locks (key, owner, until, expires_at) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (key) DO NOTHING
