SELECT COUNT(*), MIN(at) FROM spool_limits WHERE key = ?1
