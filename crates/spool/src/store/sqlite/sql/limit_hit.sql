INSERT INTO spool_limits (key, at) VALUES (?1, ?2)
