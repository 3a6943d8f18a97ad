DELETE FROM spool_locks WHERE key = ?1 AND owner = ?2 AND until = 'processing'
