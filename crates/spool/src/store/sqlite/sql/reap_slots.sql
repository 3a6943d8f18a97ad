DELETE FROM spool_slots WHERE worker_id NOT IN (SELECT id FROM spool_workers WHERE expires_at > ?1)
