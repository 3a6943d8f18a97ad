SELECT value FROM spool_meta WHERE name = 'restart_epoch' AND slot = 0 FOR UPDATE
