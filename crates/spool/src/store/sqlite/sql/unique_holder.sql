SELECT owner FROM spool_locks WHERE key = ?1
