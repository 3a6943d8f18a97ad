DELETE FROM spool_limits
WHERE expires_at <= ?1 OR (expires_at IS NULL AND at <= ?1 - 2592000000)
