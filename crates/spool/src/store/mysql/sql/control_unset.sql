DELETE FROM spool_control WHERE kind = ? AND name = ?
