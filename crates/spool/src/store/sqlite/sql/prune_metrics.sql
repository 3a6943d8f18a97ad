DELETE FROM spool_metrics WHERE res = ?1 AND at < ?2
