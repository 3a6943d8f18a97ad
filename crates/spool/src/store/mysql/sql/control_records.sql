SELECT name, value, info FROM spool_control WHERE kind = ?
