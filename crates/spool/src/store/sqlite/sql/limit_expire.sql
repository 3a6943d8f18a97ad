DELETE FROM spool_limits WHERE key = ?1 AND at <= ?2
