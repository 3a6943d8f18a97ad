DELETE FROM spool_limits WHERE key = ?1
