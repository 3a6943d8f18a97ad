DELETE FROM spool_locks WHERE owner = ?1 AND until <> 'expiry'
