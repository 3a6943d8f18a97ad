SELECT COUNT(*) FROM spool_failed WHERE (? IS NULL OR queue = ?)
