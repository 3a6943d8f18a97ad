DELETE FROM spool_limits
WHERE expires_at <= {now} OR (expires_at IS NULL AND at <= {now} - 2592000000)
