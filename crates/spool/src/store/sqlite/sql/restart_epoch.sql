SELECT value FROM spool_meta WHERE name = 'restart_epoch'
