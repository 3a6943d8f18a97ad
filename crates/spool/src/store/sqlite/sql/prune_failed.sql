DELETE FROM spool_failed WHERE failed_at < ?1
