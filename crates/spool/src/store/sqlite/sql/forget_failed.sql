DELETE FROM spool_failed WHERE id = ?1
