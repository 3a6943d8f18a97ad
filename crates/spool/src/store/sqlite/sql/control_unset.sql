DELETE FROM spool_control WHERE kind = ?1 AND name = ?2
