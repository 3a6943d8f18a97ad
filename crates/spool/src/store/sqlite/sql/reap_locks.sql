DELETE FROM spool_locks WHERE expires_at IS NOT NULL AND expires_at <= ?1
