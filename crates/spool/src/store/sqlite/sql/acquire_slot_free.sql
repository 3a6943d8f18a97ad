-- Slots of expired holders or dead workers (?2 is now) are free.
DELETE FROM spool_slots WHERE key = ?1 AND ((expires_at IS NOT NULL AND expires_at <= ?2)
    OR worker_id NOT IN (SELECT id FROM spool_workers WHERE expires_at > ?2))
