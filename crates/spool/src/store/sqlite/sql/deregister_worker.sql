DELETE FROM spool_workers WHERE id = ?1
