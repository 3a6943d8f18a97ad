DELETE FROM spool_failed WHERE failed_at < {now} - ?
