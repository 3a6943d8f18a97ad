SELECT COUNT(*) FROM spool_failed
