DELETE FROM spool_locks WHERE owner = ? AND held_until <> 'expiry'
