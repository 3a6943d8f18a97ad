DELETE FROM spool_workers WHERE id = ?
