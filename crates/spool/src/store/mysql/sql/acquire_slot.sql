INSERT INTO spool_slots (name, holder, worker_id, expires_at)
VALUES (?, ?, ?, {now} + ?)
