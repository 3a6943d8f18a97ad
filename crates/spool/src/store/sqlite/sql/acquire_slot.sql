INSERT INTO spool_slots (key, holder, worker_id, expires_at) VALUES (?1, ?2, ?3, ?4)
