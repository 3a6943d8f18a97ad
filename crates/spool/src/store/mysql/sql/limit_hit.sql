INSERT INTO spool_limits (name, at) VALUES (?, ?)
