SELECT COUNT(*) FROM spool_failed WHERE (?1 IS NULL OR queue = ?1)
