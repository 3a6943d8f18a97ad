DELETE FROM spool_metrics WHERE res = ? AND at < ?
