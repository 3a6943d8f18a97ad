DELETE FROM spool_locks WHERE key = ?1 AND expires_at IS NOT NULL AND expires_at <= ?2
