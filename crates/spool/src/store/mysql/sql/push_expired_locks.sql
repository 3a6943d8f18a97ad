DELETE FROM spool_locks
WHERE name IN ({keys}) AND expires_at IS NOT NULL AND expires_at <= {now}
