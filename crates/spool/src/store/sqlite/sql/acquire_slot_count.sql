SELECT COUNT(*), COALESCE(SUM(holder = ?2), 0) FROM spool_slots WHERE key = ?1
