SELECT value FROM spool_meta WHERE name = 'processed'
