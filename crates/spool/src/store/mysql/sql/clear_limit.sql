DELETE FROM spool_limits WHERE name = ?
