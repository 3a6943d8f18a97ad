SELECT id, failed_ids FROM spool_batches WHERE id IN ({ids}) ORDER BY id FOR UPDATE
