SELECT 1 FROM spool_batches WHERE id = ?1
