SELECT id, ?1 - expires_at FROM spool_workers WHERE expires_at <= ?1 ORDER BY expires_at
