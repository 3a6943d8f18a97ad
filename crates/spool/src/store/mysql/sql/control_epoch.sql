SELECT value FROM spool_control WHERE kind = 'epoch' AND name = ?
