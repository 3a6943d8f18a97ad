DELETE FROM spool_results WHERE completed_at < {now} - ?
