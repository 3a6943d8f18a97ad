DELETE FROM spool_failed
