DELETE FROM spool_results WHERE completed_at < ?1
