INSERT INTO spool_locks (name, owner, held_until, expires_at) VALUES (?, ?, ?, {now} + ?)
